"""Launchers and checks run from a checkout (`make run`: run_local.py); a package so that run_local's helpers
import as `scripts.*` from the repository root, never from a same-named package elsewhere on the path."""
