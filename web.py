"""Web entry point: `python web.py [gunicorn options]` checks the settings, then runs gunicorn on wsgi:app.

gunicorn alone would turn a bad setting into a traceback (it parses WEB_CONCURRENCY when it is imported, and our
gunicorn.conf.py runs inside its config loader): here a bad setting is one line naming the variable, and exit 2.
Extra arguments go to gunicorn (e.g. `--bind 127.0.0.1:8000`); gunicorn.conf.py holds everything else.
"""
import logging
import sys
from pathlib import Path

from core import preflight
from core.logs import configure_logging
from core.settings import SettingsError, load


def run() -> int:
    try:
        settings = load()
        preflight.check(settings)
        preflight.check_web(settings)
    except SettingsError as exc:
        configure_logging()
        logging.getLogger("web").error("configuration error: %s", exc)
        return 2
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = [sys.argv[0], "-c", str(Path(__file__).with_name("gunicorn.conf.py")), *sys.argv[1:], "wsgi:app"]
    WSGIApplication("%(prog)s [OPTIONS]").run()
    return 0


if __name__ == "__main__":
    sys.exit(run())
