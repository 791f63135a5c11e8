"""Shared fixtures live in tests/fixtures/, one module per kind of real server; all are loaded here."""
from pathlib import Path

pytest_plugins = sorted(f"tests.fixtures.{path.stem}" for path in (Path(__file__).parent / "fixtures").glob("*.py")
                        if path.stem != "__init__")
