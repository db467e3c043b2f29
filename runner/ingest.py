"""Moved to runner.client.plugin. An install made before the move still points its ``ptd``
pytest11 entry point here until it is reinstalled; nothing is registered from this module."""
