"""Benchmarks: our web/worker measured against references (websockets.broadcast, bare Flask) in the same run."""
