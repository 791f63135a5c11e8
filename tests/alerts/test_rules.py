"""Rules from TOML text: what parses, and bad rules failing the start with one line naming the rule and problem
(never a destination URL)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.alerts.config import MAX_RULES_BYTES, alerts_from_env
from core.alerts.rules import parse
from core.env import SettingsError
from core.settings import from_env

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEST = f"""
[destinations.ops]
webhook = "https://hooks.example/abc?token=TOPSECRET1"
secret = "{SECRET}"
[destinations.chat]
apprise = "tgram://111:TOPSECRET2/222"
"""
EXAMPLE = DEST + """
[[rules]]
name = "fills"
when = "fill"
accounts = [7]
to = ["ops"]

[[rules]]
name = "liq"
when = "liquidation_distance_below"
percent = 5
markets = [0, 1]

[[rules]]
name = "margin"
when = "margin_usage_above"
percent = 80
clear_below = 70
cooldown_s = 60

[[rules]]
name = "dd"
when = "drawdown_above"
percent = 10
window_s = 3600

[[rules]]
name = "stale"
when = "stale"
seconds = 30

[[rules]]
name = "pos"
when = "position"
changes = ["opened", "flipped"]

[[rules]]
name = "blocked"
when = "upstream_blocked"
"""


def test_the_documented_example_parses() -> None:
    rules = parse(EXAMPLE, "ALERTS")
    by = {r.name: r for r in rules.rules}
    assert by["fills"].accounts == frozenset({7}) and by["fills"].to == ("ops",)
    assert by["liq"].threshold == 5 and by["liq"].clear == pytest.approx(5.5) and by["liq"].to == ("ops", "chat")
    assert (by["margin"].threshold, by["margin"].clear, by["margin"].cooldown_s) == (80, 70, 60)
    assert by["dd"].window_s == 3600 and by["dd"].clear == pytest.approx(9)
    assert by["pos"].changes == frozenset({"opened", "flipped"})
    assert rules.destinations["chat"].kind == "apprise"


def test_docs_example_is_the_tested_one() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    for line in ("when = \"liquidation_distance_below\"", "when = \"drawdown_above\"", "window_s = 3600"):
        assert line in docs


@pytest.mark.parametrize(("text", "problem"), [
    ("[[rules]]\nname = \"a\"\nwhen = \"fill\"\n", "rule 'a': to must name at least one destination"),
    (DEST + "[[rules]]\nname = \"a\"\nwhen = \"nope\"\n", "rule 'a': when must be one of"),
    (DEST + "[[rules]]\nname = \"m\"\nwhen = \"margin_usage_above\"\n", "rule 'm': needs percent"),
    (DEST + "[[rules]]\nname = \"m\"\nwhen = \"margin_usage_above\"\npercent = \"80\"\n",
     "rule 'm': percent must be a number"),
    (DEST + "[[rules]]\nname = \"m\"\nwhen = \"margin_usage_above\"\npercent = 80\nclear_below = 90\n",
     "rule 'm': clear_below must not be above percent"),
    (DEST + "[[rules]]\nname = \"d\"\nwhen = \"drawdown_above\"\npercent = 5\n", "rule 'd': needs window_s"),
    (DEST + "[[rules]]\nname = \"f\"\nwhen = \"fill\"\nto = [\"pager\"]\n", "rule 'f': unknown destination(s) pager"),
    (DEST + "[[rules]]\nname = \"f\"\nwhen = \"fill\"\npercent = 3\n", "rule 'f': unknown key(s) percent"),
    (DEST + "[[rules]]\nname = \"f\"\nwhen = \"fill\"\n[[rules]]\nname = \"f\"\nwhen = \"fill\"\n",
     "rule 'f': the name is used twice"),
    (DEST + "[[rules]]\nname = \"l\"\nwhen = \"liquidation_distance_below\"\npercent = 500\n",
     "rule 'l': percent must be between 0 and 100"),
    (DEST + "[[rules]]\nname = \"p\"\nwhen = \"position\"\nchanges = [\"exploded\"]\n", "rule 'p': changes must list"),
    ("[destinations.x]\nwebhook = \"https://h.example/TOPSECRET1\"\n", "destination 'x': webhook needs secret"),
    ("[destinations.x]\nwebhook = \"ftp://h.example/TOPSECRET1\"\nsecret = \"" + SECRET + "\"\n",
     "destination 'x': webhook must be an http:// or https:// URL"),
    ("[destinations.x]\nwebhook = \"https://h.example/TOPSECRET1\"\nsecret = \"whsec_!!!notbase64!!!\"\n",
     "destination 'x': secret is not base64"),
    ("[destinations.x]\napprise = \"tgram://TOPSECRET1\"\nwebhook = \"https://TOPSECRET1\"\n",
     "destination 'x': needs exactly one of webhook or apprise"),
    ("rules = [", "not valid TOML"),
])
def test_bad_rules_fail_with_one_line_naming_the_rule(text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse(text, "ALERTS")
    message = str(caught.value)
    assert problem in message and message.startswith("ALERTS: ")
    assert "\n" not in message and "TOPSECRET" not in message and SECRET not in message


def test_rules_from_a_file_or_from_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(EXAMPLE)
    from_file = alerts_from_env({"ALERTS_FILE": str(path)})
    from_var = alerts_from_env({"ALERTS": EXAMPLE})
    assert from_file.rules == from_var.rules and len(from_var.rules.rules) == 7
    with pytest.raises(SettingsError, match="^ALERTS and ALERTS_FILE are both set"):
        alerts_from_env({"ALERTS_FILE": str(path), "ALERTS": EXAMPLE})
    with pytest.raises(SettingsError, match="^ALERTS_FILE cannot be read"):
        alerts_from_env({"ALERTS_FILE": str(tmp_path / "missing.toml")})
    path.write_text("#" * (MAX_RULES_BYTES + 1))
    with pytest.raises(SettingsError, match=f"^ALERTS_FILE is larger than {MAX_RULES_BYTES} bytes"):
        alerts_from_env({"ALERTS_FILE": str(path)})
    with pytest.raises(SettingsError, match="^ALERTS_FILE: rule 'f': unknown destination"):
        path.write_text("[[rules]]\nname = \"f\"\nwhen = \"fill\"\nto = \"x\"\n")
        alerts_from_env({"ALERTS_FILE": str(path)})


def test_settings_wire_alerts_and_redact_destinations() -> None:
    settings = from_env({"ALERTS": EXAMPLE, "PUBLIC_URL": "https://dash.example/"})
    assert settings.alerts.public_url == "https://dash.example"
    assert "https://hooks.example/abc?token=TOPSECRET1" in settings.secrets()
    assert SECRET in settings.secrets() and "tgram://111:TOPSECRET2/222" in settings.secrets()
    assert "TOPSECRET" not in repr(settings)
    with pytest.raises(SettingsError, match="^ALERTS_RETRY_CAP_S must not be below ALERTS_RETRY_BASE_S$"):
        from_env({"ALERTS_RETRY_BASE_S": "10", "ALERTS_RETRY_CAP_S": "1"})
    with pytest.raises(SettingsError, match="^PUBLIC_URL must be"):
        from_env({"PUBLIC_URL": "dash.example"})


@pytest.mark.parametrize("entry", ["worker.py", "web.py"])
def test_a_bad_rule_fails_the_start_with_one_line(entry: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.paths import ROOT

    bad = DEST + "[[rules]]\nname = \"margin\"\nwhen = \"margin_usage_above\"\npercent = 80\nclear_below = 95\n"
    done = subprocess.run([sys.executable, entry], cwd=ROOT, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DOTENV_FILE": "", "ALERTS": bad,
                               "CACHE_DIR": str(tmp_path / "store")})
    output = (done.stdout + done.stderr).decode().strip()
    assert done.returncode != 0
    assert output.splitlines() == [output] and "rule 'margin': clear_below must not be above percent" in output
    assert "TOPSECRET" not in output and "Traceback" not in output


def test_at_most_max_rules() -> None:
    from core.alerts.rules import MAX_RULES

    many = DEST + "".join(f'[[rules]]\nname = "r{i}"\nwhen = "fill"\n' for i in range(MAX_RULES + 1))
    with pytest.raises(SettingsError, match=f"^ALERTS: at most {MAX_RULES} rules$"):
        parse(many, "ALERTS")
    assert len(parse(DEST + "".join(f'[[rules]]\nname = "r{i}"\nwhen = "fill"\n' for i in range(MAX_RULES)),
                     "ALERTS").rules) == MAX_RULES
