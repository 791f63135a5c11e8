"""Our token as Lighter clients present theirs: bare or Bearer header, joined duplicates, `auth` query."""
from __future__ import annotations

import pytest

from app.compat import auth, errors


@pytest.mark.parametrize("header, query, expected", [
    ("tok", None, ["tok"]), ("Bearer tok", None, ["tok"]), ("tok, tok", None, ["tok, tok", "tok"]),
    (None, "tok", ["tok"]), ("a", "b", ["a", "b"]), ("", "  ", []), (None, None, []),
])
def test_candidates(header: str | None, query: str | None, expected: list[str]) -> None:
    assert auth.candidates(header, query) == expected


def test_check() -> None:
    assert auth.check(None, []) is None and auth.check(None, ["anything"]) is None  # no API_TOKEN: open
    assert auth.check("secret", []) == errors.AUTH_MISSING
    assert auth.check("secret", ["nope"]) == errors.AUTH_INVALID
    assert auth.check("secret", auth.candidates("secret, secret", None)) is None
    assert auth.check("secret", auth.candidates("Bearer secret", None)) is None
