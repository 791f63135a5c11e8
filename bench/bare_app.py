"""The REST reference: a bare Flask app returning one constant JSON body (the bytes of our real response).

Run under our gunicorn.conf.py exactly like wsgi:app: `gunicorn -c gunicorn.conf.py bench.bare_app:app` with
BENCH_BODY_FILE pointing at the body to serve (default: a 2 KB JSON object).
"""
from __future__ import annotations

import os

from flask import Flask, Response


def create_app(body: bytes | None = None) -> Flask:
    if body is None:
        path = os.environ.get("BENCH_BODY_FILE")
        body = open(path, "rb").read() if path else b'{"pad": "' + b"x" * 2036 + b'"}'
    app = Flask(__name__)

    @app.get("/api/accounts/<int:index>")
    def account(index: int) -> Response:
        return Response(body, mimetype="application/json")

    return app


app = create_app()
