"""Lighter auth tokens minted offline with the SDK's signer library, cached until shortly before expiry."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.accounts import Account

log = logging.getLogger(__name__)

MAX_TTL_S = 8 * 3600  # Lighter rejects expiries more than 8 h ahead
MAINNET_CHAIN_ID = 304


def chain_id_for(base_url: str) -> int:
    """The chain id the SDK would pick for this host (signer_client.SignerClient.__init__)."""
    if "testnet.zklighter" in base_url or "api.rh-testnet.lighter" in base_url:
        return 300
    if "api.rh.lighter" in base_url:
        return 466324
    return MAINNET_CHAIN_ID


class TokenError(RuntimeError):
    """The signer refused (bad key). The message never contains the key or a token."""


class Tokens:
    """One signer client per keyed account; `get()` returns a token valid for at least `refresh_before` s."""

    def __init__(self, base_url: str, ttl_s: float = 3600.0, refresh_before_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = base_url
        self._ttl = int(min(ttl_s, MAX_TTL_S - 60))
        self._refresh_before = min(refresh_before_s, self._ttl / 2)
        self._clock = clock
        self._clients: set[int] = set()
        self._cache: dict[int, tuple[str, float]] = {}
        self._signer: Any = None

    def _lib(self) -> Any:
        """The SDK's signer library (a ctypes CDLL: untyped), loaded on first use."""
        if self._signer is None:
            from lighter.signer_client import get_signer

            self._signer = get_signer()
        return self._signer

    def _decode(self, ptr: int | None) -> str | None:
        # Same as signer_client.decode_and_free: the library allocated it, so its own Free releases it.
        if not ptr:
            return None
        import ctypes

        try:
            value = ctypes.cast(ptr, ctypes.c_char_p).value
            return value.decode("utf-8") if value is not None else None
        finally:
            self._lib().Free(ptr)

    def _ensure_client(self, account: Account) -> None:
        if account.account_index in self._clients:
            return
        if account.private_key is None:
            raise TokenError(f"account {account.account_index} is public-only: no key to sign with")
        key = account.private_key.reveal()
        key = key[2:] if key.startswith("0x") else key
        err = self._decode(self._lib().CreateClient(self._url.encode(), key.encode(), chain_id_for(self._url),
                                                    account.api_key_index, account.account_index))
        if err is not None:
            raise TokenError(f"signer refused the key of account {account.account_index}: {err[:80]}")
        self._clients.add(account.account_index)

    def get(self, account: Account) -> str:
        """A cached token, or a freshly minted one when the cached one is close to expiry."""
        now = self._clock()
        cached = self._cache.get(account.account_index)
        if cached and cached[1] - now > self._refresh_before:
            return cached[0]
        self._ensure_client(account)
        expiry = int(now) + self._ttl
        result = self._lib().CreateAuthToken(expiry, account.api_key_index, account.account_index)
        token, err = self._decode(result.str), self._decode(result.err)
        if err is not None or not token:
            raise TokenError(f"signer could not mint a token for account {account.account_index}: "
                             f"{(err or 'empty token')[:80]}")
        self._cache[account.account_index] = (token, float(expiry))
        log.debug("minted auth token for account %s, valid %ss", account.account_index, self._ttl)
        return token

    def expiry(self, account_index: int) -> float | None:
        cached = self._cache.get(account_index)
        return cached[1] if cached else None

    def invalidate(self, account_index: int) -> None:
        """Upstream rejected a token: mint a new one next time."""
        self._cache.pop(account_index, None)
