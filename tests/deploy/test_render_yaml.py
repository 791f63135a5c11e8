"""render.yaml against Render's documented Blueprint fields (https://render.com/docs/blueprint-spec), the Procfile
and our settings: a Blueprint that Render would reject, or that starts something the Procfile does not, fails here."""
from __future__ import annotations

import re

import pytest
import yaml

from core.settings import SettingsError, from_env
from tests.deploy.envdoc import documented_settings, launcher_only
from tests.paths import ROOT

# Field lists from Render's Blueprint reference ("Service fields", "Render Key Value", "Setting environment
# variables", "Environment groups"). Deprecated aliases (env, autoDeploy, redis) are left out on purpose.
ROOT_FIELDS = {"services", "databases", "envVarGroups", "projects", "ungrouped", "previews"}
SERVER_FIELDS = {
    "name", "type", "runtime", "plan", "previews", "buildCommand", "startCommand", "preDeployCommand", "region",
    "repo", "branch", "autoDeployTrigger", "numInstances", "scaling", "buildFilter", "rootDir", "disk", "envVars",
    "dockerCommand", "dockerfilePath", "dockerContext", "registryCredential", "image", "maxShutdownDelaySeconds",
}
ALLOWED = {
    "web": SERVER_FIELDS | {"healthCheckPath", "domains", "ipAllowList"},
    "worker": SERVER_FIELDS,
    "keyvalue": {"name", "type", "ipAllowList", "region", "plan", "previewPlan", "maxmemoryPolicy"},
}
REQUIRED = {
    "web": {"name", "type", "runtime", "buildCommand", "startCommand"},
    "worker": {"name", "type", "runtime", "buildCommand", "startCommand"},
    "keyvalue": {"name", "type", "ipAllowList"},
}
RUNTIMES = {"node", "python", "elixir", "go", "ruby", "rust", "docker", "image", "static"}
REGIONS = {"oregon", "ohio", "virginia", "frankfurt", "singapore"}
MAXMEMORY = {"allkeys-lru", "volatile-lru", "allkeys-random", "volatile-random", "volatile-ttl", "noeviction"}
SOURCES = ("value", "generateValue", "sync", "fromDatabase", "fromService", "fromGroup")
PROPERTIES = {"keyvalue": {"connectionString"}, "web": {"host", "port", "hostport"},
              "pserv": {"host", "port", "hostport"}}
SECRET = re.compile(r"(PRIVATE|PROXY_\d+_URL|API_TOKEN|REDIS_URL|PASSWORD|SECRET)$")


@pytest.fixture(scope="module")
def blueprint() -> dict:
    return yaml.safe_load((ROOT / "render.yaml").read_text())


@pytest.fixture(scope="module")
def services(blueprint) -> dict[str, dict]:
    return {s["name"]: s for s in blueprint["services"]}


def by_type(services: dict[str, dict], kind: str) -> list[dict]:
    return [s for s in services.values() if s["type"] == kind]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def test_root_and_service_fields_are_documented(blueprint, services):
    assert set(blueprint) <= ROOT_FIELDS
    assert len(services) == len(blueprint["services"]), "service names must be unique"
    for service in services.values():
        kind = service["type"]
        assert kind in ALLOWED, f"{service['name']}: type {kind!r}"
        assert set(service) <= ALLOWED[kind], f"{service['name']}: undocumented {set(service) - ALLOWED[kind]}"
        assert REQUIRED[kind] <= set(service), f"{service['name']}: missing {REQUIRED[kind] - set(service)}"
        if "runtime" in service:
            assert service["runtime"] in RUNTIMES
        if "region" in service:
            assert service["region"] in REGIONS


def test_one_web_one_worker_one_private_key_value_all_in_one_region(services):
    web, worker, store = by_type(services, "web"), by_type(services, "worker"), by_type(services, "keyvalue")
    assert len(web) == len(worker) == len(store) == 1
    assert web[0]["healthCheckPath"] == "/ready", "readiness: a deploy with a wrong REDIS_URL must not go live"
    assert store[0]["ipAllowList"] == [], "Key Value must take internal connections only"
    assert store[0].get("maxmemoryPolicy", "allkeys-lru") in MAXMEMORY
    # the private network (and REDIS_URL's internal address) only works within one region
    assert len({s.get("region", "oregon") for s in services.values()}) == 1


def test_python_services_build_from_pinned_requirements_on_the_pinned_python(blueprint, services):
    # Major.minor only, so platforms pick up 3.11 patch releases (Render and Heroku read .python-version).
    assert (ROOT / ".python-version").read_text() == "3.11\n"
    groups = {g["name"]: g for g in blueprint.get("envVarGroups", [])}
    for service in by_type(services, "web") + by_type(services, "worker"):
        assert service["runtime"] == "python"
        assert service["buildCommand"] == "pip install -r requirements.txt"
        env = service_env(service, groups)
        # PYTHON_VERSION would win over .python-version and must be a full version on Render: a pin again.
        assert "PYTHON_VERSION" not in env, f"{service['name']}: PYTHON_VERSION pins a patch release"


def test_start_commands_match_the_procfile(services):
    entries = procfile()
    assert set(entries) == {"web", "worker"}
    assert by_type(services, "web")[0]["startCommand"] == entries["web"]
    assert by_type(services, "worker")[0]["startCommand"] == entries["worker"]
    # web.py checks the settings and then runs gunicorn with gunicorn.conf.py (never --preload: gevent patches late).
    assert entries["web"] == "python web.py" and entries["worker"] == "python worker.py"


def check_entry(entry: dict, where: str, in_group: bool) -> None:
    sources = [s for s in SOURCES if s in entry]
    assert len(sources) == 1, f"{where}: exactly one of {SOURCES}, got {sources}"
    source = sources[0]
    if source == "fromGroup":
        assert set(entry) == {"fromGroup"}, f"{where}: fromGroup takes no key"
        return
    assert set(entry) == {"key", source}, f"{where}: unexpected fields {set(entry)}"
    if source == "sync":
        assert entry["sync"] is False, f"{where}: only `sync: false` is meaningful"
    if source == "generateValue":
        assert entry["generateValue"] is True
    if source == "value":
        assert isinstance(entry["value"], (str, int, float)) and not isinstance(entry["value"], bool)
        assert not SECRET.search(entry["key"]), f"{where}: a secret with a literal value"
    if in_group:
        assert source in ("value", "generateValue"), f"{where}: groups take only value or generateValue"


def service_env(service: dict, groups: dict[str, dict]) -> dict[str, dict]:
    """Every variable a service ends up with: its groups' first, then its own entries."""
    env: dict[str, dict] = {}
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            env.update({e["key"]: e for e in groups[entry["fromGroup"]]["envVars"]})
    env.update({e["key"]: e for e in service.get("envVars", []) if "key" in e})
    return env


def test_env_var_entries_have_exactly_one_source_and_references_resolve(blueprint, services):
    groups = {g["name"]: g for g in blueprint.get("envVarGroups", [])}
    assert len(groups) == 1, "shared settings live in one env var group"
    for group in groups.values():
        assert set(group) <= {"name", "envVars"}
        keys = [e["key"] for e in group["envVars"]]
        assert len(keys) == len(set(keys))
        for entry in group["envVars"]:
            check_entry(entry, f"group {group['name']}: {entry.get('key')}", in_group=True)
    for service in services.values():
        entries = service.get("envVars", [])
        keys = [e["key"] for e in entries if "key" in e]
        assert len(keys) == len(set(keys)), f"{service['name']}: repeated keys"
        for entry in entries:
            where = f"{service['name']}: {entry.get('key', entry.get('fromGroup'))}"
            check_entry(entry, where, in_group=False)
            if "fromGroup" in entry:
                assert entry["fromGroup"] in groups, f"{where}: no such envVarGroup"
            if "fromService" in entry:
                ref = entry["fromService"]
                assert ref.get("name") in services, f"{where}: no such service"
                assert ref.get("type") == services[ref["name"]]["type"], f"{where}: type mismatch"
                assert ("property" in ref) != ("envVarKey" in ref), f"{where}: property or envVarKey"
                if "property" in ref:
                    assert ref["property"] in PROPERTIES.get(ref["type"], set()), f"{where}: property"


def test_store_wiring_secrets_and_token(blueprint, services):
    groups = {g["name"]: g for g in blueprint.get("envVarGroups", [])}
    store = by_type(services, "keyvalue")[0]["name"]
    for service in by_type(services, "web") + by_type(services, "worker"):
        env = service_env(service, groups)
        assert env["REDIS_URL"]["fromService"] == {"type": "keyvalue", "name": store, "property": "connectionString"}
        for key, entry in env.items():
            if key.startswith("Lighter_") and (key.endswith("_PRIVATE") or "_PROXY_" in key):
                assert entry == {"key": key, "sync": False}, f"{key} must be a `sync: false` secret"
    worker_env = service_env(by_type(services, "worker")[0], groups)
    assert any(re.match(r"^Lighter_\d+_[A-Za-z0-9]+_Account_Index$", k) for k in worker_env), "no account prompt"
    web_env = service_env(by_type(services, "web")[0], groups)
    assert web_env["API_TOKEN"] == {"key": "API_TOKEN", "generateValue": True}


def placeholder(key: str) -> str:
    """A valid value for a variable whose value Render supplies (prompt, generator or another service)."""
    if key == "REDIS_URL":
        return "redis://red-example:6379"
    if key == "DATABASE_URL":
        return "postgresql://user:pass@dpg-example/lighter_history"
    if key.endswith("_PRIVATE"):
        return "ab" * 40
    if key.endswith("_Index"):
        return "1"
    if key.endswith("_URL"):
        return "http://user:pass@10.0.0.1:3128"
    return "generated-secret-value"


def test_every_variable_is_a_documented_setting_and_the_result_is_valid(blueprint, services):
    groups = {g["name"]: g for g in blueprint.get("envVarGroups", [])}
    names, patterns = documented_settings()
    for service in by_type(services, "web") + by_type(services, "worker"):
        env = service_env(service, groups)
        for key in env:
            known = key in names or key == "PYTHON_VERSION" or any(p.match(key) for p in patterns)
            assert known and key not in launcher_only(), f"{service['name']}: {key} is not a setting in .env.example"
        values = {k: str(e["value"]) if "value" in e else placeholder(k) for k, e in env.items()}
        try:
            from_env(values)
        except SettingsError as exc:
            pytest.fail(f"{service['name']}: settings would fail at start: {exc}")
