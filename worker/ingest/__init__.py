"""Pure: upstream bytes into parsed frames, and parsed frames merged into account state. No I/O here."""
