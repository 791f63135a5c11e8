"""A faithful local stand-in for Lighter's REST and /stream WebSocket API (run with `python -m simulator`).

Never imported by app/ or worker/: it is a separate process. Tests talk to it over HTTP, and may
import `simulator.client.SimControl` for the `/_sim/` control API.
"""
