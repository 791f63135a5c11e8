"""The connection edge's pure parts (app/server.py): credential masking, key validation, JSON error responses.
The handler itself runs in real gunicorn in tests/app/test_edges.py and tests/drills/test_hostile_clients*.py."""
from __future__ import annotations

import json
import logging

import pytest

from app.server import CredentialFilter, _valid_key, http_error, mask_credentials


@pytest.mark.parametrize(("line", "hidden"), [
    ("Invalid http version: 'GET /api/status?token=s3cr3t-value HTTP/9.9\\r\\n'", "s3cr3t-value"),
    ("GET /stream?auth=abc123&x=1 HTTP/1.0", "abc123"),
    ("GET /ws?since=5&TOKEN=Upper-Case-1 HTTP/1.1", "Upper-Case-1"),
    ("headers: {'Authorization': 'Bearer tok-999'}", "tok-999"),
    ("Authorization: Bearer tok-888\r\nHost: x", "tok-888"),
    ("redis://user:hunter22@redis:6379/0", "hunter22"),
])
def test_credentials_are_masked_wherever_they_appear(line: str, hidden: str) -> None:
    masked = mask_credentials(line)
    assert hidden not in masked and "***" in masked


def test_known_secrets_are_masked_and_the_rest_of_the_line_kept() -> None:
    masked = mask_credentials("error from 10.0.0.1: path /x/the-api-token-value/y", ("the-api-token-value",))
    assert masked == "error from 10.0.0.1: path /x/***/y"
    assert mask_credentials("GET /api/accounts/7?since=3 HTTP/1.1") == "GET /api/accounts/7?since=3 HTTP/1.1"


def test_the_filter_renders_each_record_masked() -> None:
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, "bad line %s", ("GET /?token=zz9",),
                               None)
    assert CredentialFilter().filter(record) and record.getMessage() == "bad line GET /?token=***"


def test_websocket_keys_must_be_16_bytes_of_base64() -> None:
    assert _valid_key("dGhlIHNhbXBsZSBub25jZQ==")
    assert not _valid_key("!!not-base64!!") and not _valid_key("c2hvcnQ=") and not _valid_key("")


def test_http_error_is_a_complete_json_response_that_closes() -> None:
    raw = http_error(429, "too many", (("Retry-After", "1"),))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 429 Too Many Requests"
    assert "Connection: close" in lines and "Retry-After: 1" in lines and f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"error": "Too Many Requests", "status": 429, "message": "too many"}
