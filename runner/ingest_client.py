"""Moved to runner.client.ingestion; kept until runs/ingest.py imports strip_token from there."""

from runner.client.ingestion import strip_token

__all__ = ["strip_token"]
