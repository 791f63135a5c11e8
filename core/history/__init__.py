"""History: every fill, position and order event, equity samples (pure derivation, schema, database access).

Imports no web framework: the worker writes through it, the web reads through it.
"""
