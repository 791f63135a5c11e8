"""Worker tests: pure logic on recorded payloads, and the real worker process against the simulator."""
