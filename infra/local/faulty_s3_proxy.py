"""A fault-injecting HTTP proxy for an S3 endpoint (moto or real), for retry tests.

Every request is forwarded to ``--upstream`` unless the proxy decides, with probability
``failure_rate`` from a ``random.Random(seed)`` sequence, to fail it. Faults:

- ``slowdown``: HTTP 503 with the S3 XML error ``SlowDown``;
- ``internal``: HTTP 500 with the S3 XML error ``InternalError``;
- ``reset``: the connection is closed without any response.

The request body is always read in full first, so a client never sees a broken pipe
mid-upload. Bodies are streamed in 64 KiB pieces (``Content-Length`` bodies) or de-chunked
(``Transfer-Encoding: chunked``); responses are relayed with their status and headers, so
multipart uploads and range GETs work unchanged. Signatures are not re-computed: the
``Host`` header is forwarded as the client sent it (moto does not verify SigV4).

``fail_paths``: requests whose path contains one of these substrings always fail (``SlowDown``),
whatever the rate: a deterministic "this object stays throttled" for tests of what outlasts the
retries.

``GET /__faults__`` returns JSON counters (``requests``, ``forwarded``, ``faults``,
``by_kind``); ``POST /__faults__?failure_rate=0.3`` changes the rate at run time. These
control paths are never counted or failed.

Run it as a process: ``python -m infra.local.faulty_s3_proxy --upstream URL --port P
--failure-rate 0.2 --seed 0``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_KINDS = ("slowdown", "internal", "reset")
CONTROL_PATH = "/__faults__"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
_PIECE = 64 * 1024
_S3_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


class FaultPlan:
    """Thread-safe, seeded decision of which requests fail, with counters.

    Args:
        failure_rate: probability in [0, 1] that a request is failed.
        seed: seed of the decision sequence (same request order -> same faults).
        kinds: fault kinds to draw from, a subset of :data:`FAULT_KINDS`.
    """

    def __init__(
        self, failure_rate: float, seed: int = 0, kinds: tuple[str, ...] = FAULT_KINDS
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.set_rate(failure_rate)
        unknown = set(kinds) - set(FAULT_KINDS)
        if not kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds}")
        self.kinds = tuple(kinds)
        self.counts: Counter[str] = Counter()

    def set_rate(self, failure_rate: float) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
        self.failure_rate = failure_rate

    def draw(self) -> str | None:
        """Return the fault kind for the next request, or None to forward it."""
        with self._lock:
            self.counts["requests"] += 1
            if self._rng.random() < self.failure_rate:
                kind = self._rng.choice(self.kinds)
                self.counts["faults"] += 1
                self.counts[f"fault:{kind}"] += 1
                return kind
            self.counts["forwarded"] += 1
            return None

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "requests": self.counts["requests"],
                "forwarded": self.counts["forwarded"],
                "faults": self.counts["faults"],
                "by_kind": {k: self.counts[f"fault:{k}"] for k in self.kinds},
                "failure_rate": self.failure_rate,
            }


def _s3_error_body(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>faulty-proxy</RequestId></Error>"
    ).encode()


class _ProxyHandler(BaseHTTPRequestHandler):
    """Fail or forward one request; :func:`_make_handler` binds ``upstream`` and ``plan``."""

    protocol_version = "HTTP/1.1"
    upstream: urllib.parse.SplitResult
    plan: FaultPlan
    fail_paths: tuple[str, ...] = ()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return  # keep test output quiet

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return self._read_sized(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        """A ``Transfer-Encoding: chunked`` body, de-chunked (trailers are skipped)."""
        parts = []
        while True:
            size_line = self.rfile.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _read_sized(self, length: int) -> bytes:
        """A ``Content-Length`` body, read in pieces of at most 64 KiB."""
        pieces, left = [], length
        while left > 0:
            piece = self.rfile.read(min(_PIECE, left))
            if not piece:
                raise ConnectionError("client closed the connection mid-body")
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def _control(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.command == "POST" and "failure_rate" in query:
            try:
                self.plan.set_rate(float(query["failure_rate"][0]))
            except ValueError as err:
                self._send(400, str(err).encode(), "text/plain")
                return
        self._read_body()
        self._send(200, json.dumps(self.plan.stats()).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        if urllib.parse.urlsplit(self.path).path == CONTROL_PATH:
            self._control()
            return
        body = self._read_body()
        fault = self.plan.draw()
        if any(part in urllib.parse.unquote(self.path) for part in self.fail_paths):
            fault = "slowdown"
        if fault == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault is not None:
            status, code, message = _S3_ERRORS[fault]
            resource = urllib.parse.urlsplit(self.path).path
            self._send(status, _s3_error_body(code, message, resource), "application/xml", True)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = self.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        try:
            self._send_upstream(conn, body)
            self._relay(conn.getresponse())
        except OSError as err:
            message = f"upstream {upstream.geturl()} failed: {err}"
            self._send(502, message.encode(), "text/plain", close=True)
        finally:
            conn.close()

    def _send_upstream(self, conn: http.client.HTTPConnection, body: bytes) -> None:
        """Send this request to ``conn``: same method, path and end-to-end headers."""
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for key, value in self.headers.items():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                conn.putheader(key, value)
        if body or self.command in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        for start in range(0, len(body), _PIECE):
            conn.send(body[start : start + _PIECE])

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Pass the upstream ``response`` to the client: status, headers, body."""
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        payload = None
        if length is None and self.command != "HEAD":
            payload = response.read()
            length = str(len(payload))
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if payload is not None:
            self.wfile.write(payload)
        elif self.command != "HEAD":
            while piece := response.read(_PIECE):
                self.wfile.write(piece)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def _make_handler(
    upstream: urllib.parse.SplitResult, plan: FaultPlan, fail_paths: tuple[str, ...] = ()
) -> type:
    """A request-handler class that forwards to ``upstream`` and fails requests per ``plan``
    (and every request for ``fail_paths``)."""
    attrs = {"upstream": upstream, "plan": plan, "fail_paths": tuple(fail_paths)}
    return type("Handler", (_ProxyHandler,), attrs)


class FaultyS3Proxy:
    """The proxy as an in-process server on 127.0.0.1 (a daemon thread).

    Args:
        upstream: S3 endpoint URL, e.g. ``http://127.0.0.1:5000``.
        failure_rate: share of requests to fail, in [0, 1].
        seed: seed of the fault sequence.
        port: listening port (0: any free port; read ``.port``/``.endpoint``).
        kinds: fault kinds to use.
        fail_paths: request paths containing one of these always fail (``SlowDown``).
    """

    def __init__(
        self,
        upstream: str,
        failure_rate: float = 0.2,
        seed: int = 0,
        port: int = 0,
        kinds: tuple[str, ...] = FAULT_KINDS,
        fail_paths: tuple[str, ...] = (),
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.plan = FaultPlan(failure_rate, seed, kinds)
        handler = _make_handler(parsed, self.plan, fail_paths)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def stats(self) -> dict[str, object]:
        return self.plan.stats()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultyS3Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="S3 endpoint, http://host:port")
    parser.add_argument("--port", type=int, default=0, help="listening port (0: any)")
    parser.add_argument("--failure-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kinds", default=",".join(FAULT_KINDS), help=f"comma list of {FAULT_KINDS}"
    )
    args = parser.parse_args(argv)
    proxy = FaultyS3Proxy(
        args.upstream, args.failure_rate, args.seed, args.port, tuple(args.kinds.split(","))
    )
    print(f"faulty S3 proxy on {proxy.endpoint} -> {args.upstream}", flush=True)
    try:
        proxy.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.server.server_close()


if __name__ == "__main__":
    main()
