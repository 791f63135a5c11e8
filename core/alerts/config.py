"""Alert settings (`ALERTS`, `ALERTS_FILE`, `ALERTS_*`, `PUBLIC_URL`): one frozen object from the environment."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.alerts.rules import AlertRules, parse
from core.env import SettingsError, number

MAX_RULES_BYTES = 256 * 1024  # a rules file or ALERTS text larger than this fails the start


@dataclass(frozen=True)
class AlertSettings:
    rules: AlertRules = field(default_factory=AlertRules)
    group_s: float = 1.0          # events of one rule and account within this window go out as one message
    retry_base_s: float = 1.0     # first retry after this long, doubling per attempt...
    retry_cap_s: float = 300.0    # ...up to this (each delay times a random factor in [0.5, 1])
    give_up_s: float = 86_400.0   # an undelivered message is marked failed after this long
    timeout_s: float = 10.0       # one delivery attempt (connect + answer)
    tick_s: float = 1.0           # time-based conditions (stale, drawdown windows) are checked this often
    public_url: str = ""          # the dashboard's address, linked from each message ("" : no link)

    @property
    def enabled(self) -> bool:
        return bool(self.rules.rules)

    def secrets(self) -> list[str]:
        return self.rules.secrets()


def alerts_from_env(env: Mapping[str, str]) -> AlertSettings:
    text, source = env.get("ALERTS", "").strip(), "ALERTS"
    path = env.get("ALERTS_FILE", "").strip()
    if path:
        if text:
            raise SettingsError("ALERTS and ALERTS_FILE are both set: use one")
        source = "ALERTS_FILE"
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_RULES_BYTES + 1)
        except OSError as exc:
            raise SettingsError(f"ALERTS_FILE cannot be read ({exc.strerror})") from None
        if len(raw) > MAX_RULES_BYTES:
            raise SettingsError(f"ALERTS_FILE is larger than {MAX_RULES_BYTES} bytes")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise SettingsError("ALERTS_FILE is not UTF-8 text") from None
    elif len(text.encode()) > MAX_RULES_BYTES:
        raise SettingsError(f"ALERTS is larger than {MAX_RULES_BYTES} bytes")
    public_url = env.get("PUBLIC_URL", "").strip().rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise SettingsError("PUBLIC_URL must be an http:// or https:// URL")
    settings = AlertSettings(
        rules=parse(text, source) if text else AlertRules(),
        group_s=number(env, "ALERTS_GROUP_S", 1.0, minimum=0.0),
        retry_base_s=number(env, "ALERTS_RETRY_BASE_S", 1.0, minimum=0.01),
        retry_cap_s=number(env, "ALERTS_RETRY_CAP_S", 300.0, minimum=0.01),
        give_up_s=number(env, "ALERTS_GIVE_UP_S", 86_400.0, minimum=1.0),
        timeout_s=number(env, "ALERTS_TIMEOUT_S", 10.0, minimum=0.1),
        tick_s=number(env, "ALERTS_TICK_S", 1.0, minimum=0.05),
        public_url=public_url,
    )
    if settings.retry_cap_s < settings.retry_base_s:
        raise SettingsError("ALERTS_RETRY_CAP_S must not be below ALERTS_RETRY_BASE_S")
    return settings
