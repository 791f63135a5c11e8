"""The dashboard at `/`: static HTML, CSS and JS (no build step) that feed themselves from /ws."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory

STATIC = Path(__file__).parent / "static"
bp = Blueprint("dashboard", __name__, static_folder=STATIC, static_url_path="/static")


@bp.get("/")
def index() -> Response:
    # The page itself holds no data, so it loads without a token; it asks for one when /ws refuses it.
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
