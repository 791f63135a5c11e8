"""`python -m simulator`: run the Lighter simulator until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
import sys

from .config import parse_args
from .server import serve


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s simulator %(name)s: %(message)s")
    asyncio.run(serve(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
