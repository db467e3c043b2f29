"""The one HTTP client of the dashboard's API: requests, a bearer token, urllib3 ``Retry``.

Used by the ``ptd`` command (``cli``) and by the ingestion plugin (``ingestion.Connection``).
GETs are retried on connection errors, timeouts and 502/503/504, with backoff; any other
request only when it cannot have reached the server (the connection was never made), so a
run is never launched twice. That is urllib3's own rule: connect errors are retried for every
method, read errors and statuses only for the ``allowed_methods``.

``requests`` is imported when a Client is made, not with this module: the plugin is loaded in
every pytest run where PTD is installed and stays inert (and light) without ``--ptd-url``.
"""

from __future__ import annotations

import functools
from typing import Any

RETRY_STATUSES = (502, 503, 504)
BACKOFF_MAX = 8.0


class Rejected(Exception):
    """The server answered 4xx: a bad request, a bad token, an unknown suite or run."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Unreachable(Exception):
    """No usable answer after the retries (connection refused, timeouts, 5xx)."""


def preload() -> None:
    """Import the HTTP stack now, in the calling (main) thread. Importing it registers
    loggers (urllib3's, requests', charset_normalizer's); pytest walks the logging manager's
    dictionary of loggers on the main thread whenever it starts capturing logs, and a logger
    registered by another thread meanwhile ends the run ("dictionary changed size during
    iteration")."""
    import requests  # noqa: F401
    import urllib3.util.retry  # noqa: F401


@functools.cache
def _retry_class() -> type:
    from urllib3.util.retry import Retry

    class WaitFirst(Retry):
        """urllib3 retries the first time at once; a dashboard restarting needs a moment, so
        every retry waits: backoff, then twice as long each time, up to BACKOFF_MAX."""

        def get_backoff_time(self) -> float:
            errors = 0
            for attempt in reversed(self.history):
                if attempt.redirect_location is not None:
                    break
                errors += 1
            if errors == 0:
                return 0.0
            return float(min(self.backoff_max, self.backoff_factor * 2 ** (errors - 1)))

    return WaitFirst


def detail_of(response: Any) -> str:
    """The API's ``detail`` as one line (validation errors: each field named)."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text[:500]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            loc = ".".join(str(p) for p in item.get("loc", []) if p not in ("body", "payload"))
            parts.append(f"{loc}: {item.get('msg', item)}")
        detail = "; ".join(parts)
    return str(detail)


class Client:
    """Requests to one dashboard: ``request`` returns a 2xx/3xx response or raises Rejected
    (4xx) or Unreachable (no answer, or 5xx after the retries)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float | tuple[float, float] = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        user_agent: str = "ptd-cli",
    ):
        import requests
        from requests.adapters import HTTPAdapter

        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self._errors = requests.RequestException
        retry = _retry_class()(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff,
            backoff_max=BACKOFF_MAX,
            raise_on_status=False,  # the last 5xx comes back: Unreachable below
            respect_retry_after_header=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = user_agent

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        from urllib3.exceptions import MaxRetryError

        url = self.server + path
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except self._errors as exc:
            cause = exc.args[0] if exc.args else None
            if isinstance(cause, MaxRetryError):  # retried as far as allowed
                reason = f"{type(cause.reason).__name__}: {cause.reason}"[:300]
                tries = self.retries + 1
                raise Unreachable(
                    f"{method} {url}: no answer after {tries} tr{'y' if tries == 1 else 'ies'}"
                    f" ({reason})"
                ) from None
            raise Unreachable(f"{method} {url} failed: {type(exc).__name__}: {exc}"[:400]) from None
        if 400 <= response.status_code < 500:
            raise Rejected(response.status_code, detail_of(response))
        if response.status_code >= 500:
            raise Unreachable(f"{method} {url}: HTTP {response.status_code}")
        return response

    def get_json(self, path: str, **params: Any) -> dict:
        return self.request("GET", path, params=params or None).json()

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> dict:
        return self.request("POST", path, json=body if body is not None else {}, **kwargs).json()
