"""Offline auth tokens from the SDK's signer library: format, caching, refresh, errors without secrets."""
from __future__ import annotations

import re

import pytest

from core.accounts import Account
from core.env import Secret
from worker.upstream.tokens import TokenError, Tokens, chain_id_for

KEY = "0x" + "5a" * 40
TOKEN = re.compile(r"^(\d+):(\d+):(\d+):[0-9a-f]{160}$")


class Clock:
    t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_token_format_cache_and_refresh() -> None:
    clock = Clock()
    tokens = Tokens("http://127.0.0.1:1", ttl_s=3600, refresh_before_s=300, clock=clock)
    account = Account(1, "A", 424242, 7, Secret(KEY))
    token = tokens.get(account)
    expiry, index, api_key = map(int, TOKEN.match(token).groups())
    assert (expiry, index, api_key) == (int(clock.t) + 3600, 424242, 7)
    clock.t += 3000
    assert tokens.get(account) == token  # 10 minutes left: still cached
    clock.t += 400
    assert tokens.get(account) != token  # under 5 minutes left: re-minted
    tokens.invalidate(424242)
    assert tokens.expiry(424242) is None


def test_ttl_never_exceeds_lighters_eight_hours() -> None:
    clock = Clock()
    token = Tokens("http://x", ttl_s=24 * 3600, clock=clock).get(Account(1, "A", 5, 4, Secret(KEY)))
    assert int(token.split(":")[0]) - clock.t < 8 * 3600


def test_bad_key_error_names_account_not_key() -> None:
    bad = "0x" + "zz" * 40
    with pytest.raises(TokenError) as info:
        Tokens("http://x").get(Account(1, "A", 77, 4, Secret(bad)))
    assert "77" in str(info.value) and bad[2:] not in str(info.value)


def test_chain_ids() -> None:
    assert chain_id_for("https://mainnet.zklighter.elliot.ai") == 304
    assert chain_id_for("https://testnet.zklighter.elliot.ai") == 300
    assert chain_id_for("https://api.rh.lighter.xyz") == 466324
    assert chain_id_for("http://127.0.0.1:8765") == 304
