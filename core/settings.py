"""Settings shared by web and worker: one frozen object built from the environment in one place.

The only code that reads os.environ (`load`); everything else is given a Settings.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.accounts import Account, Proxy, accounts_from_env, proxies_from_env
from core.alerts.config import AlertSettings, alerts_from_env
from core.env import RecordingEnv, Secret, SettingsError, flag, number, optional_int
from core.envnames import check as check_names
from core.history.config import HistorySettings, history_from_env
from core.tuning import WebTuning, WorkerTuning, web_from_env, worker_from_env

MAINNET_BASE_URL = "https://mainnet.zklighter.elliot.ai"

# Lighter's REST budgets per rolling minute (docs/lighter-protocol.md, rate limits). "standard" counts requests,
# the others count weight; every endpoint the worker calls weighs 300.
TIER_WEIGHT_PER_MINUTE = {"standard": None, "premium": 24_000, "plus": 120_000, "builder": 240_000}
STANDARD_REQUESTS_PER_MINUTE = 60
ENDPOINT_WEIGHT = 300

_RATE_LIMIT = re.compile(r"^\s*[0-9]+\s*(/|per)\s*[0-9]*\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE | re.ASCII)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# gunicorn reads WEB_CONCURRENCY itself (as its worker count, which Heroku sets from the dyno size); we check it first
# so a bad value is one line naming it instead of gunicorn's traceback. Each worker is a whole gevent process.
MAX_WEB_CONCURRENCY = 64
MAX_RATE_AMOUNT = 1_000_000_000  # RATE_LIMIT's requests per window: past it, a typo rather than a limit
MAX_RATE_MULTIPLE = 1000         # RATE_LIMIT's window in units ("1/1000minute"); 0 or past it is refused


@dataclass(frozen=True)
class Settings:
    accounts: tuple[Account, ...] = ()
    proxies: Mapping[int, tuple[Proxy, ...]] = field(default_factory=dict)
    lighter_base_url: str = MAINNET_BASE_URL
    lighter_ws_url: str = "wss://mainnet.zklighter.elliot.ai/stream"
    poll_interval: float = 0.5
    orders_interval: float = 2.0
    cache_ttl: float = 5.0
    upstream_tier: str = "standard"
    upstream_requests_per_minute: int | None = None
    redis_url: Secret | None = field(default=None, repr=False)
    cache_dir: str = ".cache/store"
    rate_limit: str = "100/minute"
    api_token: Secret | None = field(default=None, repr=False)
    trusted_proxies: int = 0
    ws_max_clients: int = 10000
    log_format: str = "text"
    log_level: str = "INFO"
    port: int = 5000
    web_concurrency: int = 1
    worker: WorkerTuning = field(default_factory=WorkerTuning)
    web: WebTuning = field(default_factory=WebTuning)
    history: HistorySettings = field(default_factory=HistorySettings)  # DATABASE_URL, HISTORY_* (docs/history.md)
    metrics_token: Secret | None = field(default=None, repr=False)  # /metrics only; API_TOKEN when unset
    metrics_account_values: bool = True   # per-account equity, uPnL and margin usage gauges on /metrics
    cors_origins: tuple[str, ...] = ()    # browser origins allowed to call the API (none by default)
    redis_tls_verify: bool = True         # rediss://: verify the server's certificate (Heroku: 0, self-signed)
    alerts: AlertSettings = field(default_factory=AlertSettings)  # ALERTS, ALERTS_FILE, ALERTS_* (docs/alerts.md)

    @property
    def requests_per_minute_per_egress(self) -> int | None:
        """Upstream REST requests one egress may send per minute; None means unlimited."""
        if self.upstream_requests_per_minute is not None:
            return self.upstream_requests_per_minute
        if self.upstream_tier == "unlimited":
            return None
        weight = TIER_WEIGHT_PER_MINUTE[self.upstream_tier]
        if weight is None:
            return STANDARD_REQUESTS_PER_MINUTE
        return weight // ENDPOINT_WEIGHT

    def redis_tls_options(self) -> dict[str, str]:
        """redis-py options for REDIS_URL: with REDIS_TLS_VERIFY=0 a rediss:// server's certificate is not verified
        (Heroku's Redis presents a self-signed one); the connection is still encrypted."""
        if self.redis_url and self.redis_url.reveal().startswith("rediss://") and not self.redis_tls_verify:
            return {"ssl_cert_reqs": "none"}
        return {}

    def account(self, index: int) -> Account | None:
        return next((a for a in self.accounts if a.account_index == index), None)

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction. Never log or serve what this returns."""
        values = [a.private_key.reveal() for a in self.accounts if a.private_key]
        values += [p.password.reveal() for group in self.proxies.values() for p in group if p.password]
        values += [s.reveal() for s in (self.api_token, self.redis_url, self.metrics_token) if s]
        values += self.history.secrets()
        values += self.alerts.secrets()
        return values


def load() -> Settings:
    """Settings for a process entry point: the file named by DOTENV_FILE (default `.env`; empty skips it, as
    tests do so a developer's accounts never leak in) under the real environment, then from_env."""
    dotenv_path = os.environ.get("DOTENV_FILE", ".env")
    if dotenv_path and os.path.exists(dotenv_path):
        _load_dotenv(dotenv_path)
    return from_env(os.environ)


def _load_dotenv(path: str) -> None:
    """Load `path` under the real environment, refusing a file python-dotenv cannot read whole: it skips a line it
    cannot parse with only a warning, so `API_TOKEN="abc` (an unclosed quote) would start an open service."""
    import io

    from dotenv import load_dotenv
    from dotenv.parser import parse_stream

    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"DOTENV_FILE {path} cannot be read as UTF-8 text ({type(exc).__name__})") from None
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        raise SettingsError(f"DOTENV_FILE {path}: line {bad[0]} is not NAME=value (an unclosed quote?)")
    load_dotenv(stream=io.StringIO(text), override=False)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from a mapping (os.environ by default). Raises SettingsError naming the variable."""
    given = dict(os.environ if environ is None else environ)
    env = RecordingEnv(given)
    settings = _settings(env, given)
    check_names(given, env.asked)
    return settings


def names_read() -> frozenset[str]:
    """Every variable from_env reads (each is read whether set or not): the settings, for docs and checks."""
    env = RecordingEnv({})
    _settings(env, {})
    return frozenset(env.asked)


def _settings(env: Mapping[str, str], given: Mapping[str, str]) -> Settings:
    """`env` records what we read; `given` is the same mapping, for the pattern-named variables (accounts, proxies)
    that are found by scanning rather than by asking."""
    base_url = _url(env, "LIGHTER_BASE_URL", MAINNET_BASE_URL, ("http", "https"))
    ws_default = _default_ws_url(base_url)
    tier = env.get("UPSTREAM_TIER", "standard").strip().lower() or "standard"
    if tier not in (*TIER_WEIGHT_PER_MINUTE, "unlimited"):
        raise SettingsError(f"UPSTREAM_TIER must be one of standard, premium, plus, builder, unlimited (got {tier!r})")
    rate_limit = _rate_limit(env)
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (got {log_level!r})")
    log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
    if log_format not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT must be 'text' or 'json' (got {log_format!r})")
    return Settings(
        accounts=accounts_from_env(given),
        proxies=proxies_from_env(given),
        lighter_base_url=base_url,
        lighter_ws_url=_url(env, "LIGHTER_WS_URL", ws_default, ("ws", "wss")),
        poll_interval=number(env, "POLL_INTERVAL", 0.5, minimum=0.05),
        orders_interval=number(env, "ORDERS_INTERVAL", 2.0, minimum=0.05),
        cache_ttl=number(env, "CACHE_TTL", 5.0, minimum=0.1),
        upstream_tier=tier,
        upstream_requests_per_minute=optional_int(env, "UPSTREAM_REQUESTS_PER_MINUTE", minimum=1),
        redis_url=_redis_url(env),
        cache_dir=env.get("CACHE_DIR", "").strip() or ".cache/store",
        rate_limit=rate_limit,
        api_token=_api_token(env),
        trusted_proxies=int(number(env, "TRUSTED_PROXIES", 0, minimum=0, integer=True)),
        ws_max_clients=int(number(env, "WS_MAX_CLIENTS", 10000, minimum=1, integer=True)),
        log_format=log_format,
        log_level=log_level,
        port=int(number(env, "PORT", 5000, minimum=1, maximum=65535, integer=True)),
        web_concurrency=int(number(env, "WEB_CONCURRENCY", 1, minimum=1, maximum=MAX_WEB_CONCURRENCY, integer=True)),
        worker=worker_from_env(env),
        web=_edges(web_from_env(env)),
        history=history_from_env(env),
        metrics_token=Secret(env["METRICS_TOKEN"]) if env.get("METRICS_TOKEN", "").strip() else None,
        metrics_account_values=flag("METRICS_ACCOUNT_VALUES", env.get("METRICS_ACCOUNT_VALUES", "1").strip() or "1"),
        cors_origins=_cors_origins(env),
        redis_tls_verify=flag("REDIS_TLS_VERIFY", env.get("REDIS_TLS_VERIFY", "1").strip() or "1"),
        alerts=alerts_from_env(env),
    )


def _default_ws_url(base_url: str) -> str:
    split = urlsplit(base_url)
    scheme = "wss" if split.scheme == "https" else "ws"
    return f"{scheme}://{split.netloc}/stream"


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    split = urlsplit(value)
    if split.scheme not in schemes or not split.netloc:
        raise SettingsError(f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL")
    return value.rstrip("/")


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """Comma-separated origins (scheme://host[:port]); `*` allows any origin."""
    origins = tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        split = urlsplit(origin)
        if origin != "*" and (split.scheme not in ("http", "https") or not split.netloc or split.path):
            raise SettingsError("CORS_ORIGINS must be a comma-separated list of http(s)://host[:port] origins or *")
    return origins


def _rate_limit(env: Mapping[str, str]) -> str:
    rate_limit = env.get("RATE_LIMIT", "").strip() or "100/minute"
    match = _RATE_LIMIT.match(rate_limit)
    if not match:
        raise SettingsError(f"RATE_LIMIT must look like '100/minute' (got {rate_limit!r})")
    amount = int(rate_limit.split("/")[0].lower().split("per")[0])
    if amount < 1:
        raise SettingsError(f"RATE_LIMIT must allow at least 1 request (got {rate_limit!r})")
    if amount > MAX_RATE_AMOUNT:
        raise SettingsError(f"RATE_LIMIT allows more than {MAX_RATE_AMOUNT} requests (got {rate_limit!r})")
    multiple = re.search(r"[0-9]*(?=\s*(second|minute|hour|day))", rate_limit.split("/")[-1].lower().split("per")[-1])
    if multiple and multiple.group() and not 1 <= int(multiple.group()) <= MAX_RATE_MULTIPLE:
        # `limits` reads "1/0minute" as 1 per minute, and a huge multiple overflows Redis' expiry
        raise SettingsError(f"RATE_LIMIT's window must be 1 to {MAX_RATE_MULTIPLE} units (got {rate_limit!r})")
    return rate_limit


# Upper bounds of the hostile-edge deadlines (docs/security.md): past them a value is a typo that would quietly turn
# the protection off (WEB_HEADER_TIMEOUT_S=1e300 kept half-open connections for ever; a window of 1e300 s
# overflows Redis' expiry: the failure budget errs, then blocks a guesser for 1 s instead of the window).
EDGE_MAXIMA = {"header_timeout_s": 60.0, "stream_auth_timeout_s": 300.0, "auth_failure_window_s": 86_400.0}


def _edges(web: WebTuning) -> WebTuning:
    for name, maximum in EDGE_MAXIMA.items():
        if getattr(web, name) > maximum:
            raise SettingsError(f"WEB_{name.upper()} must be at most {maximum:g}")
    return web


def _api_token(env: Mapping[str, str]) -> Secret | None:
    """Unset or empty: no token (an open service, as documented). Anything else must be a token a client can send in
    a header: blanks alone would silently leave the service open, and leading or trailing blanks or a control
    character could never match what a client sends (HTTP strips the blanks), locking everyone out."""
    value = env.get("API_TOKEN", "")
    if value == "":
        return None
    if not value.strip():
        raise SettingsError("API_TOKEN is only blanks; unset it for an open service, or give a token")
    if value != value.strip() or not value.isprintable():
        raise SettingsError("API_TOKEN has leading or trailing blanks or a control character")
    return Secret(value)


def _redis_url(env: Mapping[str, str]) -> Secret | None:
    """REDIS_URL holds a password: messages describe what is wrong with it, never any part of it."""
    value = env.get("REDIS_URL", "").strip()
    if not value:
        return None
    try:
        split = urlsplit(value)
        port = split.port
    except ValueError:
        raise SettingsError("REDIS_URL has a port that is not a number between 0 and 65535") from None
    if split.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    if split.scheme != "unix" and not split.hostname:
        raise SettingsError("REDIS_URL needs a host (redis://[user:password@]host[:port][/db])")
    if port == 0:
        raise SettingsError("REDIS_URL has port 0; give a port between 1 and 65535")
    db = split.path.strip("/")
    if split.scheme != "unix" and db and not (db.isascii() and db.isdigit()):
        raise SettingsError("REDIS_URL has a database number that is not an integer")
    from redis.connection import parse_url  # redis' own parser: query options it would refuse when the web starts

    try:
        parse_url(value)
    except ValueError:  # its message quotes nothing secret, but ours names the variable the same way as above
        raise SettingsError("REDIS_URL has a query option with a value redis cannot use "
                            "(socket_timeout, db, health_check_interval...)") from None
    return Secret(value)
