"""Everything that talks to Lighter: the WebSocket feed, budgeted REST polls, auth tokens, egresses."""
