"""Every HTTP request a test makes with ``requests``, measured: method, templated path,
status, elapsed.

``requests.Session.send`` is wrapped in the load processes only (``install``): every call of
``requests.get``, of a ``Session``, of an adapter a test mounted, goes through it. A response
with status >= 400 is a failure, an exception raised by ``send`` (connection refused, timeout)
an exception; redirects followed by ``send`` count once, under the first URL, for their whole
time. The path's ids are collapsed so ``/items/17`` and ``/items/18`` are one endpoint:
``GET /items/{id}`` (integers, UUIDs, hex strings of 16+ characters).

Each user keeps its connections alive across iterations, as a browser or Locust's
``HttpUser`` does: a ``Session`` made in a user's thread (``requests.get`` makes one per call)
gets that user's own connection pools (``user_started``), which its ``close`` leaves open.
Everything else of a session (cookies, headers, auth) is still new each time. Without this,
each call of ``requests.get`` opened a TCP connection: 40 % of the CPU a load test spent.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from typing import Any
from urllib.parse import urlsplit

from .recorder import Recorder, error_key

_ID = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,})$"
)
_local = threading.local()
_installed: dict[str, Any] = {}


def template(url: str) -> str:
    """The URL's path with its ids replaced by ``{id}`` (no host, no query)."""
    path = urlsplit(url).path or "/"
    return "/".join("{id}" if _ID.match(part) else part for part in path.split("/"))


def endpoint(method: str | None, url: str) -> str:
    return f"{(method or 'GET').upper()} {template(url)}"


def preload() -> None:
    """Import ``requests`` (when installed) before the load processes fork: once, shared."""
    import importlib.util

    if importlib.util.find_spec("requests") is not None:
        import requests  # noqa: F401


def user_started() -> None:
    """In a user's thread: sessions made here share this user's connection pools."""
    try:
        from requests.adapters import HTTPAdapter
    except ImportError:
        return

    class UserAdapter(HTTPAdapter):
        def close(self) -> None:  # a Session's close: the user's connections stay
            pass

        def really_close(self) -> None:
            super().close()

    _local.adapters = {"https://": UserAdapter(), "http://": UserAdapter()}


def user_stopped() -> None:
    for adapter in (getattr(_local, "adapters", None) or {}).values():
        adapter.really_close()
    _local.adapters = None


def install(recorder: Recorder) -> bool:
    """Measure every ``requests`` call of this process into ``recorder``; False without
    ``requests`` (nothing to measure: only the tests' iterations are)."""
    try:
        import requests
    except ImportError:
        return False
    if _installed:
        _installed["recorder"] = recorder
        return True
    _installed["recorder"] = recorder
    original = requests.Session.send
    original_init = requests.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        adapters = getattr(_local, "adapters", None)
        if adapters:
            for prefix, adapter in adapters.items():
                if prefix in self.adapters:
                    self.adapters[prefix] = adapter

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if getattr(_local, "inside", False):  # a redirect hop: the outer call measures it
            return original(self, request, **kwargs)
        _local.inside = True
        start = time.perf_counter()
        try:
            response = original(self, request, **kwargs)
        except Exception as exc:
            ms = (time.perf_counter() - start) * 1000.0
            name = endpoint(request.method, request.url)
            _installed["recorder"].request(
                name,
                ms,
                "exception",
                error_key(type(exc).__name__, str(exc)),
                "".join(traceback.format_exception_only(type(exc), exc)),
            )
            raise
        finally:
            _local.inside = False
        ms = (time.perf_counter() - start) * 1000.0
        name = endpoint(request.method, request.url)
        status = getattr(response, "status_code", 0) or 0
        if status >= 400:
            reason = getattr(response, "reason", "") or ""
            error = f"HTTP {status}" + (f" {reason}" if reason else "")
            body = ""
            try:
                body = response.text[:2000] if not kwargs.get("stream") else ""
            except Exception:  # noqa: BLE001 - an undecodable body: the status says enough
                body = ""
            detail = f"{error}: {request.method} {request.url}" + (f"\n\n{body}" if body else "")
            _installed["recorder"].request(name, ms, "failure", error, detail)
        else:
            _installed["recorder"].request(name, ms, None)
        return response

    send.__wrapped__ = original  # type: ignore[attr-defined]
    requests.Session.send = send  # type: ignore[method-assign]
    init.__wrapped__ = original_init  # type: ignore[attr-defined]
    requests.Session.__init__ = init  # type: ignore[method-assign]
    return True
