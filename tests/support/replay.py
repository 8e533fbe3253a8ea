"""A replay-attack kit for smart HTTP: a recording reverse proxy, `replay`, and `parse_report`.

Put `RecordingProxy` in front of an `HttpServer` and push through `proxy.url(...)`: every
request (Authorization header included) is forwarded, and each `POST .../git-receive-pack` is
recorded with its headers and body bytes. `replay(recorded)` sends one again straight to the web
server. With `proxy.hold = True` an authenticated receive-pack request is recorded but never
forwarded (the client gets a 503), so a test holds a push certificate the server has not seen.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .servers import HOST, HttpServer, http_url

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
        "host",
    }
)
"""Headers not copied verbatim between hops (the length and host are set per hop)."""

PROBE_BODY = b"0000"
"""The flush packet Git POSTs first to probe authentication before a large request."""

TIMEOUT = 120.0


@dataclass
class RecordedRequest:
    """One request as the proxy forwarded it (end-to-end headers, de-chunked body)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    upstream: tuple[str, int]
    held: bool = False
    """True when the proxy kept it from the server (hold mode)."""
    status: int | None = None
    """The server's response status (None when held)."""
    response: bytes | None = None
    """The server's response body (None when held)."""

    @property
    def is_receive_pack(self) -> bool:
        return self.method == "POST" and self.path.split("?")[0].endswith("/git-receive-pack")

    @property
    def is_probe(self) -> bool:
        return self.body == PROBE_BODY

    @property
    def authenticated(self) -> bool:
        return any(name.lower() == "authorization" for name, _ in self.headers)

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class RecordingProxy:
    """A recording reverse proxy on a free 127.0.0.1 port in front of one HTTP server."""

    def __init__(self, upstream: HttpServer) -> None:
        self.upstream = upstream
        self.hold = False
        """When True, authenticated receive-pack POSTs are recorded, not forwarded (503)."""
        self.requests: list[RecordedRequest] = []
        """Every request seen, in order."""
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((HOST, 0), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(
        self, repo_name: str | Path, user: str | None = None, password: str | None = None
    ) -> str:
        """Like `HttpServer.url`, but through the proxy."""
        return http_url(HOST, self.port, self.upstream.base_path, repo_name, user, password)

    @property
    def receive_packs(self) -> list[RecordedRequest]:
        """Authenticated, non-probe receive-pack POSTs (forwarded or held), in order."""
        with self._lock:
            return [
                r for r in self.requests if r.is_receive_pack and r.authenticated and not r.is_probe
            ]

    def last_receive_pack(self) -> RecordedRequest:
        """The latest recorded receive-pack request; AssertionError when there is none."""
        found = self.receive_packs
        if not found:
            raise AssertionError(f"no receive-pack request recorded (saw {len(self.requests)})")
        return found[-1]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.requests.clear()

    def start(self) -> RecordingProxy:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


@contextmanager
def recording_proxy(upstream: HttpServer) -> Iterator[RecordingProxy]:
    """A started `RecordingProxy` for `upstream`; stopped on exit."""
    with RecordingProxy(upstream) as proxy:
        yield proxy


def _handler_class(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and automatic `100 Continue`

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return _read_chunked(self.rfile)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _forward(self) -> None:
            body = self._body()
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
            upstream = (proxy.upstream.host, proxy.upstream.port)
            recorded = RecordedRequest(self.command, self.path, headers, body, upstream)
            proxy._record(recorded)
            if (
                proxy.hold
                and recorded.is_receive_pack
                and recorded.authenticated
                and not recorded.is_probe
            ):
                recorded.held = True
                self._respond(503, [("Content-Type", "text/plain")], b"held by recording proxy\n")
                return
            try:
                status, resp_headers, data = _send(upstream, self.command, self.path, headers, body)
            except OSError as exc:
                self._respond(502, [("Content-Type", "text/plain")], f"proxy: {exc}\n".encode())
                return
            recorded.status, recorded.response = status, data
            kept = [(k, v) for k, v in resp_headers if k.lower() not in HOP_BY_HOP]
            self._respond(status, kept, data)

        def _respond(self, status: int, headers: Sequence[tuple[str, str]], data: bytes) -> None:
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = do_DELETE = _forward

    return Handler


def _read_chunked(stream: Any) -> bytes:
    out = bytearray()
    while True:
        line = stream.readline()
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        out += stream.read(size)
        stream.readline()  # CRLF after the chunk


def _send(
    upstream: tuple[str, int],
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float = TIMEOUT,
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(upstream[0], upstream[1], timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"{upstream[0]}:{upstream[1]}")
        for name, value in headers:
            conn.putheader(name, value)
        if body or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def replay(
    recorded: RecordedRequest,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> tuple[int, bytes]:
    """Send a recorded request again, directly to the web server; `(status, body)`.

    `body` replaces the recorded body; `headers` replace (or, with value "", drop) headers.
    """
    sent = list(recorded.headers)
    for name, value in (headers or {}).items():
        sent = [(k, v) for k, v in sent if k.lower() != name.lower()]
        if value:
            sent.append((name, value))
    status, _, data = _send(
        recorded.upstream,
        recorded.method,
        recorded.path,
        sent,
        recorded.body if body is None else body,
        timeout,
    )
    return status, data


# --------------------------------------------------------------------------- pkt-line


def pkt_lines(data: bytes) -> list[bytes | None]:
    """Split pkt-line data; flush/delim/response-end packets are None. ValueError if malformed."""
    out: list[bytes | None] = []
    pos = 0
    while pos < len(data):
        head = data[pos : pos + 4]
        try:
            size = int(head, 16)
        except ValueError:
            raise ValueError(f"not pkt-line data at byte {pos}: {data[pos : pos + 40]!r}") from None
        if len(head) < 4:
            raise ValueError(f"truncated pkt-line header at byte {pos}")
        if size < 4:
            out.append(None)
            pos += 4
            continue
        if pos + size > len(data):
            raise ValueError(f"truncated pkt-line at byte {pos} (length {size})")
        out.append(data[pos + 4 : pos + size])
        pos += size
    return out


def pkt_line(payload: bytes) -> bytes:
    """One pkt-line packet carrying `payload`."""
    return b"%04x" % (len(payload) + 4) + payload


def certificate_of(body: bytes) -> bytes:
    """The push certificate a receive-pack request body carries (its lines, as Git stores the blob)."""
    return _split_certificate(body)[1]


def rewrite_certificate(body: bytes, certificate: bytes) -> bytes:
    """A receive-pack request body with its push certificate replaced by `certificate` (split into
    one pkt-line per line, as Git sends it); everything else is kept byte for byte."""
    head, _, tail = _split_certificate(body)
    lines = certificate.split(b"\n")
    packets = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    return head + b"".join(pkt_line(line) for line in packets) + tail


def _split_certificate(body: bytes) -> tuple[bytes, bytes, bytes]:
    """(the `push-cert` packet, the certificate's lines, the rest from `push-cert-end` on)."""
    pos, head_end = 0, None
    lines: list[bytes] = []
    while pos < len(body):
        size = int(body[pos : pos + 4], 16)
        packet = body[pos + 4 : pos + size] if size >= 4 else b""
        if head_end is None:
            if not packet.startswith(b"push-cert\0"):
                raise ValueError("the request carries no push certificate")
            head_end = pos + size
        elif packet == b"push-cert-end\n":
            return body[:head_end], b"".join(lines), body[pos:]
        else:
            lines.append(packet)
        pos += max(size, 4)
    raise ValueError("the push certificate has no push-cert-end line")


def _text_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace").replace("\r", "\n")
    return [line.rstrip() for line in text.split("\n") if line.strip()]


def parse_report(body: bytes) -> dict[str, Any]:
    """Decode a receive-pack response (report-status, with or without side-band).

    Returns a dict with:
    `unpack` ("ok" or the error, None if absent), `ok` (refs accepted, in order), `ng`
    ({ref: reason}), `options` (report-status-v2 option lines), `remote` (side-band 2 text
    lines: the hook's stderr and progress, what the client prints as `remote: ...`), `fatal`
    (side-band 3 lines), `sideband` (bool), and `accepted` (unpack ok, some ref ok, none ng).
    """
    packets = [p for p in pkt_lines(body) if p is not None]
    sideband = bool(packets) and packets[0][:1] in (b"\x01", b"\x02", b"\x03")
    report = bytearray()
    progress = bytearray()
    fatal = bytearray()
    if sideband:
        for packet in packets:
            band, payload = packet[:1], packet[1:]
            if band == b"\x01":
                report += payload
            elif band == b"\x02":
                progress += payload
            elif band == b"\x03":
                fatal += payload
            else:
                raise ValueError(f"unknown side-band {band!r}")
        lines = [p for p in pkt_lines(bytes(report)) if p is not None]
    else:
        lines = packets
    result: dict[str, Any] = {
        "unpack": None,
        "ok": [],
        "ng": {},
        "options": [],
        "remote": _text_lines(bytes(progress)),
        "fatal": _text_lines(bytes(fatal)),
        "sideband": sideband,
    }
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith("unpack "):
            result["unpack"] = line.removeprefix("unpack ")
        elif line.startswith("ok "):
            result["ok"].append(line.removeprefix("ok "))
        elif line.startswith("ng "):
            ref, _, reason = line.removeprefix("ng ").partition(" ")
            result["ng"][ref] = reason
        elif line.startswith("option "):
            result["options"].append(line.removeprefix("option "))
    result["accepted"] = result["unpack"] == "ok" and bool(result["ok"]) and not result["ng"]
    return result


__all__ = [
    "RecordedRequest",
    "RecordingProxy",
    "certificate_of",
    "parse_report",
    "pkt_line",
    "pkt_lines",
    "recording_proxy",
    "replay",
    "rewrite_certificate",
]
