""".env.example lists every setting with its real default, and .env stays out of git."""
from __future__ import annotations

import re

import pytest

from core.settings import from_env
from tests.deploy.envdoc import (
    ROOT,
    example_values,
    launcher_only,
    process_variables,
    settings_variables,
    variable_patterns,
)

ACCOUNT_SUFFIXES = ("Account_Index", "API_KEY_Index", "PRIVATE", "PUBLIC")


def test_settings_reader_is_understood():
    # guards the AST scan itself: if these vanish the scan (not the settings) is broken
    assert {"LIGHTER_BASE_URL", "REDIS_URL", "API_TOKEN", "PORT"} <= settings_variables()
    assert len(variable_patterns()) >= 2


def test_every_setting_is_documented():
    documented = set(example_values())
    missing = settings_variables() - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    patterns = variable_patterns()
    for suffix in ACCOUNT_SUFFIXES:
        assert any(re.match(rf"^Lighter_\d+_[A-Za-z0-9]+_{suffix}$", name) for name in documented), suffix
    assert any(re.match(r"^Lighter_\d+_PROXY_\d+_URL$", name) for name in documented)
    missing = process_variables() - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    for name in documented - settings_variables() - launcher_only() - process_variables():
        assert any(p.match(name) for p in patterns), f".env.example documents {name}, which nothing reads"


@pytest.mark.parametrize("name", sorted(settings_variables()))
def test_documented_default_is_the_real_default(name):
    value = example_values()[name]
    assert from_env({name: value}) == from_env({}), f".env.example says {name}={value!r}; that is not the default"


def test_documented_worker_tuning_is_the_real_default():
    from core.tuning import WorkerTuning, worker_from_env

    documented = {k: v for k, v in example_values().items() if k.startswith("WORKER_")}
    assert worker_from_env(documented) == WorkerTuning(), "a WORKER_* default in .env.example is not the real one"


def test_documented_web_tuning_is_the_real_default():
    from core.tuning import WebTuning, web_from_env

    documented = {k: v for k, v in example_values().items() if k.startswith("WEB_") and k != "WEB_CONCURRENCY"}
    assert documented, ".env.example documents no WEB_* tuning"
    assert web_from_env(documented) == WebTuning(), "a WEB_* default in .env.example is not the real one"


def test_example_configures_nothing_when_copied_verbatim(tmp_path):
    # `cp .env.example .env` must give the demo (no accounts) with every default, not a half-set account
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None}
    assert values == {}, "every line is commented out"
    assert from_env(values) == from_env({})


def test_dotenv_is_ignored_by_git():
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored and ".cache/" in ignored
