"""render.yaml's Render Postgres database (https://render.com/docs/blueprint-spec, "Render Postgres"): documented
fields only, private, in the services' region, and wired into both services as DATABASE_URL."""
from __future__ import annotations

import yaml

from core.settings import from_env
from tests.paths import ROOT

# The database fields of Render's Blueprint reference.
DATABASE_FIELDS = {"name", "databaseName", "user", "plan", "previewPlan", "region", "postgresMajorVersion",
                   "diskSizeGB", "ipAllowList", "readReplicas", "highAvailability"}


def test_one_private_database_wired_into_web_and_worker() -> None:
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    (database,) = blueprint["databases"]
    assert set(database) <= DATABASE_FIELDS and {"name", "plan"} <= set(database)
    assert database["ipAllowList"] == [], "internal connections only"
    services = [s for s in blueprint["services"] if s["type"] in ("web", "worker")]
    assert {s["region"] for s in services} == {database["region"]}
    for service in services:
        (entry,) = [e for e in service["envVars"] if e.get("key") == "DATABASE_URL"]
        assert entry == {"key": "DATABASE_URL",
                         "fromDatabase": {"name": database["name"], "property": "connectionString"}}


def test_render_connection_strings_select_psycopg() -> None:
    # Render hands out postgresql:// (older platforms postgres://); both must mean psycopg 3.
    for scheme in ("postgresql", "postgres"):
        url = from_env({"DATABASE_URL": f"{scheme}://u:p@dpg-x.singapore-postgres.render.com/db"}).history
        assert url.database_url.reveal().startswith("postgresql+psycopg://") and url.dialect == "postgresql"
