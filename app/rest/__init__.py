"""The web's REST API: /api/* and /health, the pre-Flask short-circuit, per-client rate limits."""
