"""The Django-free client of a dashboard, run on CI machines: plain Python and requests.

``http`` is the one HTTP client of the API (urllib3 ``Retry``); ``cli`` the ``ptd`` command
(console script); ``plugin`` the pytest plugin that sends a run made elsewhere (the ``ptd``
pytest11 entry point, inert without ``--ptd-url``); ``ingestion`` its connection, spool
files, token stripping and the CI's commit/branch/job URL. Imports neither Django nor ``runs``.
"""
