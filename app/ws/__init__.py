"""/ws: the WebSocket route, the fan-out hub, per-client state, the socket transport, message builders."""
