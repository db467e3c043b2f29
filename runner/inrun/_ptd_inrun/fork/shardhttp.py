"""A shard's requests to the dashboard (``fork.remote``): blocking, or one on its way.

Stdlib only (``urllib``, ``http.client``): the suite's interpreter need not have requests. One
connection per request, closed with its answer. ``start`` sends a request and returns at once
(``Pending``): the controller's loop waits on its socket beside its workers' pipes, so it
reads results and feeds workers while the dashboard answers. The controller finishes any
request on its way before it forks a worker, so no socket is ever inherited by one.

Over HTTPS a socket turns readable before the answer too: TLS 1.3 servers send session tickets
after the handshake. ``Pending.ready`` reads what came without blocking: records of TLS alone
leave it waiting; the first bytes of the answer are kept and read again by http.client.
(Connecting, the TLS handshake and sending the body still happen in ``start``, waiting.)
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

TRIES = 6
TIMEOUT = 30.0


class QueueRefused(Exception):
    """The dashboard answered 4xx: the shard must stop (its message says why)."""


class Transient(Exception):
    """No answer to a request sent without waiting: it is sent again, waiting (``post``)."""


def refused(code: int, text: bytes) -> QueueRefused:
    try:
        detail = json.loads(text).get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    return QueueRefused(str(detail) or f"HTTP {code}")


class _Prefixed(io.RawIOBase):
    """A socket's stream, behind bytes of it already read (``Pending.ready``)."""

    def __init__(self, prefix: bytes, sock) -> None:
        self.prefix, self.sock = prefix, sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        return self.sock.recv_into(buffer)


class _PrefixedSocket:
    """What http.client.HTTPResponse reads a socket through (``makefile``)."""

    def __init__(self, prefix: bytes, sock) -> None:
        self.prefix, self.sock = prefix, sock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Prefixed(self.prefix, self.sock))


class Pending:
    """A request sent, its answer not read yet."""

    def __init__(self, conn: http.client.HTTPConnection, path: str, body: dict) -> None:
        self.conn = conn
        self.path = path
        self.body = body
        self.sent = time.monotonic()
        self.deadline = self.sent + TIMEOUT
        self.prefix: bytes | None = None  # the answer's first bytes, read by ``ready``

    def ready(self) -> bool:
        """After its socket turned readable: is the answer (or an end) there? Over TLS the
        records read may have been session tickets only: then not yet."""
        sock = self.conn.sock
        if not isinstance(sock, ssl.SSLSocket) or self.prefix is not None:
            return True
        try:
            sock.setblocking(False)
            self.prefix = sock.recv(65536)  # b"": the server closed; answer() says so
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            self.prefix = b""
        finally:
            with contextlib.suppress(OSError):
                sock.setblocking(True)
        return True

    def fileno(self) -> int:
        sock = self.conn.sock
        return sock.fileno() if sock is not None else -1

    def due_in(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def answer(self) -> dict:
        """Its answer (blocks until it is in); raises QueueRefused or Transient."""
        try:
            if time.monotonic() >= self.deadline:
                raise Transient("no answer in time")
            sock = self.conn.sock
            if sock is not None:
                sock.settimeout(max(0.1, self.due_in()))
            if self.prefix is not None and sock is not None:  # read in part by ready()
                response = http.client.HTTPResponse(_PrefixedSocket(self.prefix, sock))  # type: ignore[arg-type]
                response.begin()
            else:
                response = self.conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Transient(str(exc)) from None
        finally:
            self.close()
        if 400 <= response.status < 500:
            raise refused(response.status, text)
        if response.status != 200:
            raise Transient(f"HTTP {response.status}")
        try:
            return json.loads(text or b"{}")
        except ValueError as exc:
            raise Transient(str(exc)) from None

    def close(self) -> None:
        self.conn.close()


class ShardQueue:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        parts = urllib.parse.urlsplit(self.url)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port
        self.prefix = parts.path
        # Behind a proxy (the environment's), every request goes through urllib, waiting.
        proxied = urllib.request.getproxies().get(self.scheme)
        self.direct = self.scheme in ("http", "https") and not (
            proxied and not urllib.request.proxy_bypass(parts.netloc)
        )

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "User-Agent": "ptd-shard",
        }

    def start(self, path: str, body: dict) -> Pending | None:
        """Send a request without waiting for its answer; None when it could not be sent
        (``post`` it then: it retries)."""
        if not self.direct:
            return None
        if self.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=TIMEOUT, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.request("POST", self.prefix + path, json.dumps(body).encode(), self.headers())
        except (OSError, http.client.HTTPException):
            conn.close()
            return None
        return Pending(conn, path, body)

    def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        delay = 0.2
        for attempt in range(TRIES):
            request = urllib.request.Request(  # noqa: S310 - the dashboard URL the agent gave
                self.url + path, data=data, method="POST", headers=self.headers()
            )
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:
                    raise refused(exc.code, exc.read()) from None
                error: Exception = exc
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = exc
            if attempt == TRIES - 1:
                raise QueueRefused(f"the dashboard is unreachable: {error}")
            time.sleep(delay)
            delay = min(3.0, delay * 2)
        raise AssertionError("unreachable")

    def finish(self, pending: Pending) -> dict:
        """The answer of a request sent with ``start``; sent again, waiting, if it has none."""
        try:
            return pending.answer()
        except Transient:
            return self.post(pending.path, pending.body)
