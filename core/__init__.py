"""Shared by the worker and the web: settings, the typed snapshot, the store contract, backoff, logging.

Imports no web framework and nothing from app/ or worker/.
"""
