"""Lighter-compatible API: `/api/v1/account`, `/api/v1/accountActiveOrders`, `GET /` Status and `/stream`,
served from our store in Lighter's shapes so bots built on the official lighter-sdk work unchanged."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the Lighter routes; call after the web's limiter, store and hub exist (create_app)."""
    from app.compat import rest, stream_view

    rest.init_app(app)
    stream_view.init_app(app)
