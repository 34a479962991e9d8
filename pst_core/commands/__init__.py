"""CLI command modules, one per pipeline stage; each exposes `register(app)`."""
