"""The worker process: upstream WebSocket feed, budgeted REST reconciler, pure parse/merge, store writer."""
