"""Environments that answer back: the `Env` protocol, the built-in keys-and-doors world,
the agent's turn format and the episode record with its instruments."""
