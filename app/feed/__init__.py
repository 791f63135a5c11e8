"""One store watcher per web process, and the mirror of the store it keeps for REST."""
