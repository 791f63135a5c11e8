"""Shared helpers for simulator tests: SDK-made auth tokens, raw HTTP from a chosen source IP, WS waits."""
from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

_clients: set[tuple[int, int]] = set()


def sdk_token(acct: dict, expires_in_s: int = 600, account_index: int | None = None,
              api_key_index: int | None = None) -> str:
    """An auth token made offline by the official SDK's signer, decoded as signer_client.py does."""
    from lighter.signer_client import decode_and_free, get_signer

    signer = get_signer()
    key_idx = acct["api_key_index"] if api_key_index is None else api_key_index
    acc_idx = acct["account_index"] if account_index is None else account_index
    if (key_idx, acc_idx) not in _clients:
        err = decode_and_free(signer.CreateClient(b"http://127.0.0.1", acct["private_key"][2:].encode(),
                                                  304, key_idx, acc_idx))
        assert err is None, err
        _clients.add((key_idx, acc_idx))
    result = signer.CreateAuthToken(int(time.time()) + expires_in_s, key_idx, acc_idx)
    token, err = decode_and_free(result.str), decode_and_free(result.err)
    assert err is None, err
    return token


def http_get(base_url: str, path: str, headers: dict | None = None, source_ip: str = "127.0.0.1",
             timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """GET with the TCP source bound to `source_ip` (127.0.0.N is a distinct egress)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout, source_address=(source_ip, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get_json(base_url: str, path: str, **kw: Any) -> tuple[int, Any]:
    status, _, body = http_get(base_url, path, **kw)
    return status, json.loads(body)


def recv_until(ws: Any, pred: Callable[[dict], bool], timeout: float = 5.0) -> dict:
    """Receive frames from a websockets sync connection until `pred` holds; fail at the deadline."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching frame before the deadline")
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            raise TimeoutError("no matching frame before the deadline") from None
        if pred(frame):
            return frame
