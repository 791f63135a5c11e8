"""The tracked accounts and the proxies that carry their traffic: `Lighter_{N}_{ID}_*` and `Lighter_{N}_PROXY_{M}_URL`.

Parsed from the environment mapping core.settings gives (these variables are found by pattern, not asked for by
name); the patterns are named here once, for core.envnames too.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from core.env import Secret, SettingsError, int_value

ACCOUNT_FIELDS = ("Account_Index", "API_KEY_Index", "PRIVATE", "PUBLIC")
ACCOUNT_VAR = re.compile(r"^Lighter_(\d+)_([A-Za-z0-9]+)_(" + "|".join(ACCOUNT_FIELDS) + ")$")
PROXY_VAR = re.compile(r"^Lighter_(\d+)_PROXY_(\d+)_URL$")
HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{80}$")
MAX_ACCOUNT_INDEX = 2**63 - 1


@dataclass(frozen=True)
class Proxy:
    """One egress through an HTTP proxy. `url` holds credentials; `redacted` is safe to show."""

    url: Secret
    host: str
    port: int
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"http://{user}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.redacted})"


@dataclass(frozen=True)
class Account:
    """One tracked Lighter account. `group` selects which proxies carry its traffic."""

    group: int
    name: str
    account_index: int
    api_key_index: int | None = None
    private_key: Secret | None = field(default=None, repr=False)
    public_key: str | None = None

    @property
    def public_only(self) -> bool:
        return self.private_key is None


def accounts_from_env(env: Mapping[str, str]) -> tuple[Account, ...]:
    fields: dict[tuple[int, str], dict[str, str]] = {}
    for name, value in env.items():
        match = ACCOUNT_VAR.match(name)
        if match and match.group(2).upper() != "PROXY":
            fields.setdefault((int(match.group(1)), match.group(2)), {})[match.group(3)] = value.strip()
    accounts: list[Account] = []
    # Configuration order: by group, then as the variables appear (a stable sort keeps the environment's order;
    # `.env` files load top to bottom), never alphabetically by name.
    for (group, ident), values in sorted(fields.items(), key=lambda item: item[0][0]):
        prefix = f"Lighter_{group}_{ident}_"
        if not values.get("Account_Index"):
            raise SettingsError(f"{prefix}Account_Index is required when other {prefix}* variables are set")
        index = int_value(prefix + "Account_Index", values["Account_Index"], 0, MAX_ACCOUNT_INDEX)
        private = values.get("PRIVATE") or None
        if private is not None and not HEX_KEY.match(private):
            raise SettingsError(f"{prefix}PRIVATE must be 80 hex characters (40 bytes), optionally 0x-prefixed")
        api_key = values.get("API_KEY_Index")
        api_key_index = int_value(prefix + "API_KEY_Index", api_key, 0, 254) if api_key else None
        if private is not None and api_key_index is None:
            raise SettingsError(f"{prefix}API_KEY_Index is required when {prefix}PRIVATE is set")
        accounts.append(Account(group, ident, index, api_key_index, Secret(private) if private else None,
                                values.get("PUBLIC") or None))
    seen: dict[int, str] = {}
    for account in accounts:
        if account.account_index in seen:
            raise SettingsError(f"Lighter_{account.group}_{account.name}_Account_Index repeats account "
                                f"{account.account_index} already set by {seen[account.account_index]}")
        seen[account.account_index] = f"Lighter_{account.group}_{account.name}_Account_Index"
    return tuple(accounts)


def proxies_from_env(env: Mapping[str, str]) -> dict[int, tuple[Proxy, ...]]:
    found: dict[int, list[tuple[int, Proxy]]] = {}
    for name, value in env.items():
        match = PROXY_VAR.match(name)
        if match and value.strip():
            found.setdefault(int(match.group(1)), []).append((int(match.group(2)), parse_proxy(name, value.strip())))
    return {group: tuple(p for _, p in sorted(items, key=lambda item: item[0])) for group, items in found.items()}


def parse_proxy(variable: str, text: str) -> Proxy:
    """Accept `http://user:pass@host:port`, `host:port:user:pass` and `host:port`."""
    if "://" not in text:
        parts = text.split(":")
        if len(parts) not in (2, 4):
            raise SettingsError(f"{variable} must be http://user:pass@host:port or host:port:user:pass")
        host, port = parts[0], parts[1]
        user, password = (parts[2], parts[3]) if len(parts) == 4 else (None, None)
    else:
        try:
            split = urlsplit(text)
            host, port = split.hostname or "", str(split.port or "")
        except ValueError:
            raise SettingsError(f"{variable} is not a valid proxy URL") from None
        if split.scheme not in ("http", "https"):
            raise SettingsError(f"{variable} must use http:// (got scheme {split.scheme!r})")
        user = unquote(split.username) if split.username else None
        password = unquote(split.password) if split.password else None
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{variable} needs a host and a port between 1 and 65535")
    auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
    return Proxy(Secret(f"http://{auth}{host}:{port}"), host, int(port), user,
                 Secret(password) if password else None)
