"""Worker entry point: `python worker.py` tracks every configured Lighter account into the shared store."""
from gevent import monkey; monkey.patch_all()  # noqa: E702,I001 - before anything imports socket/ssl/threading

import logging  # noqa: E402
import sys  # noqa: E402

from core import preflight  # noqa: E402
from core.logs import configure_logging  # noqa: E402
from core.settings import SettingsError, load  # noqa: E402


def run() -> int:
    try:
        settings = load()
        preflight.check(settings)
    except SettingsError as exc:
        configure_logging()
        logging.getLogger("worker").error("configuration error: %s", exc)
        return 2
    configure_logging(settings.log_format, settings.log_level, settings.secrets())
    from worker.main import main

    return main(settings, settings.worker)


if __name__ == "__main__":
    sys.exit(run())
