"""Agents: Celery workers on other machines that run shards of a dashboard's runs.

Plain Python and celery, no Django (import-linter checks it): an agent reaches the dashboard
over HTTP with a token (``runner.client.http.Client``) and the broker, never the database.

- ``app``: the Celery app both sides build (the dashboard only sends tasks with it), its
  settings (one shard at a time, late acks, time limits) and the queue names.
- ``shard``: one shard of a run on this machine: the suite's directory mapped, its commit
  checked, its fork-engine pytest run by a ``runner.pool.Pool``, events posted numbered.
- ``main``: ``manage.py agent`` (and ``python -m runner.agent``): options, heartbeats, the
  Celery worker.
"""
