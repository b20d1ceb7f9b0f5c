"""The gunicorn worker of ``citygrid serve --prod``: gthread, but a slow client cannot hold a thread.

gunicorn's threaded worker (``gthread``, pinned to 27.x in ``pyproject.toml``) waits for a connection's first
byte in the poller, then reads the rest of the request head blocking in one of its few pool threads: a client
that sends its head one byte a second (slowloris) holds that thread for as long as it likes, and a handful of
them stop a worker. ``BufferingThreadWorker`` changes what happens before a request reaches a thread:

1. Whenever a connection is readable (a new one, a kept-alive one, or one already waiting), a pool thread
   reads only what has arrived, without blocking (``recv(..., MSG_DONTWAIT)`` until EAGAIN), into a buffer
   kept with the connection, and hands the connection straight back to the poller (gthread's ``_DEFER``): a
   thread is taken for microseconds per burst of bytes, never for the wait between them.
2. Once the whole head has arrived (``CRLF CRLF``) and the whole body too, the buffered bytes are put in front
   of gunicorn's parser and the request is handled as gthread would (``plan_body`` decides, from the head):

   - a ``Content-Length`` of at most ``BODY_BUFFER_BYTES`` (1 MiB, the app's limit on any body but an upload)
     is buffered; a larger one is answered ``413`` at once, without reading the body, unless the request is
     an upload (``UPLOAD_ENDPOINTS``: ``POST /api/v1/imports``, up to 512 MB; ``PHOTO_UPLOADS``: a report, a
     workflow step or photos posted to a case, whose photos the app takes up to 101 MiB), whose body the thread reads
     (point 5);
   - a chunked body (``Transfer-Encoding: chunked``) is buffered too: its framing is followed just enough to
     find its end (the zero-size chunk and the trailer section's blank line), with the same 1 MiB cap on its
     data (plus ``CHUNK_FRAMING_BYTES`` of framing; ``413`` over it) and the same deadline. Chunked bodies
     are buffered rather than refused with ``411`` because ordinary clients send them for small bodies of
     unknown length (Go's ``net/http`` with an ``io.Reader``, ``requests`` with a generator, Java's streaming
     mode); a chunked *upload* gets ``411 Length Required``: an upload must announce its length, which its
     read deadline is measured against and which lets an oversized one be refused before it is sent;
   - ``Expect: 100-continue`` (HTTP/1.1): the worker itself sends ``100 Continue`` when the head is complete
     and the body has not arrived yet, then buffers the body as any other (gunicorn's own ``100 Continue``
     is suppressed); an upload's expectation is left to gunicorn (sent when the thread starts reading), and
     a body refused with ``413``/``411`` never gets one, so the client need not send it;
   - a head whose framing gunicorn refuses (duplicate or malformed lengths, a transfer coding other than a
     final ``chunked``, chunked HTTP/1.0) is handed over without its body: the parser answers ``400``/``501``.
3. Deadlines: the head must be complete ``HEAD_DEADLINE_S`` (10 s) after its first byte, and a buffered body
   ``BODY_DEADLINE_S`` (60 s) after it; between two bytes a client may pause at most gunicorn's ``keepalive``
   (5 s, after which gthread's ``murder_pending`` closes it). A client over a deadline gets ``408`` and the
   connection is closed. A head larger than gunicorn's limits (``limit_request_line``, ``limit_request_fields``,
   ``limit_request_field_size``) or with a bare LF is handed to the parser, which refuses it (``400``, or
   ``431`` for header fields too large); end of stream before a complete request (its head, or a buffered body)
   closes the connection. All buffers of one worker together stay under ``BUFFER_BUDGET_BYTES`` (64 MiB); over
   it a request gets ``503``.
4. Closing: gthread closes a finished connection "gracefully" on its main thread, lingering up to 2 s for the
   client to close first, so each client that does not close after a ``Connection: close`` answer stalls the
   whole worker's poller for 2 s (50 such clients stopped a worker for 84 s). Here the lingering is done by
   the poller, without blocking: the write side is shut down, the socket is drained as it becomes readable,
   and it is closed at the client's end of stream, after 64 KiB or after ``LINGER_S`` (2 s), whichever first.
   Refusals (``408``, ``411``, ``413``, ``503``) close the same way.
5. Whatever a thread reads from the socket (an upload's body; the drain of a body the app left unread) is
   under an overall deadline, not just an idle timeout (``ReadDeadline``, installed as the parser's
   ``SocketUnreader.chunk``): each ``recv`` waits at most until ``UPLOAD_GRACE_S`` (60 s) plus the bytes
   received so far at ``UPLOAD_MIN_BYTES_PER_S`` (64 KiB/s) after the thread took the request. A client that
   keeps up gets all the time its body needs (at most 60 s + size / 64 KiB/s: 2.3 h for 512 MiB); one that
   trickles is cut off once it falls behind that rate after the grace period: the read raises
   ``BodyTooSlow`` (a ``TimeoutError``: Werkzeug answers ``400`` to what it takes for a client gone), the
   connection is closed and the cut-off is logged at info level. Both numbers come from the app's settings
   (``Settings.upload_grace_s``, ``Settings.upload_min_bytes_per_s``; ``CITYGRID_UPLOAD_GRACE_S``,
   ``CITYGRID_UPLOAD_MIN_BYTES_PER_S`` in the environment ``Settings.from_env`` reads). ``SOCKET_IDLE_TIMEOUT_S``
   (60 s) stays the socket's idle timeout, which also bounds writing the answer to a client that stops
   reading it.

Not buffered: TLS connections (``cfg.is_ssl``; terminate TLS in a reverse proxy in front) and HTTP/2 prior
knowledge (off by default), which gthread serves as before. Connections still count against
``worker_connections`` (1000 per worker by default) while they trickle; the head deadline bounds how long.
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gunicorn import util
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http2 import negotiation
from gunicorn.workers import gthread

from citygrid.config import DEFAULT_UPLOAD_GRACE_S, DEFAULT_UPLOAD_MIN_BYTES_PER_S

HEAD_DEADLINE_S = 10.0
BODY_DEADLINE_S = 60.0
BODY_BUFFER_BYTES = 1024 * 1024  # citygrid.app.MAX_BODY_BYTES: larger bodies are uploads
SOCKET_IDLE_TIMEOUT_S = 60.0
BUFFER_BUDGET_BYTES = 64 * 1024 * 1024
RECV_BYTES = 256 * 1024
LINGER_S = 2.0
LINGER_MAX_BYTES = 64 * 1024
# Buffers above this size are checked against the worker's budget (smaller ones cost nothing worth counting).
BUDGET_CHECK_BYTES = 64 * 1024

# Bodies larger than BODY_BUFFER_BYTES are accepted only here (citygrid.app.UPLOAD_ENDPOINTS), read by the thread.
UPLOAD_ENDPOINTS = frozenset({(b"POST", b"/api/v1/imports")})
# POST paths whose multipart body may carry photos (citygrid.app.PHOTO_ENDPOINTS): read by the thread as well.
PHOTO_UPLOADS = re.compile(rb"/api/v1/cases(?:/[0-9]{1,19}/(?:photos|transitions))?")
# A chunked body's framing (size lines, extensions, trailers) may add this much to its 1 MiB of data.
CHUNK_FRAMING_BYTES = 64 * 1024


# Bodies a thread reads (uploads): each recv waits at most until the grace period plus the bytes received so far
# at the minimum rate after the thread took the request (point 5 of the module docstring). These are the
# defaults; a worker takes its app's settings (``BufferingThreadWorker.load_wsgi``).
UPLOAD_GRACE_S = DEFAULT_UPLOAD_GRACE_S
UPLOAD_MIN_BYTES_PER_S = DEFAULT_UPLOAD_MIN_BYTES_PER_S

CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


def _answer(status: bytes, code: str, message: str) -> bytes:
    """A closing answer with the app's JSON error body (``{"error", "message", "details"}``)."""
    body = json.dumps({"error": code, "message": message, "details": []}).encode()
    return (b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, len(body)) + body)


TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
BUSY_503 = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n"
TOO_LARGE_413 = _answer(b"413 Content Too Large", "request_entity_too_large",
                        "request bodies are limited to 1 MiB, except uploads (POST /api/v1/imports) "
                        "and requests with photos (POST /api/v1/cases, its photos and transitions)")
LENGTH_REQUIRED_411 = _answer(b"411 Length Required", "length_required",
                              "an upload must send a Content-Length (a chunked upload is not accepted)")
ANSWERS = {"late": TIMEOUT_408, "busy": BUSY_503, "too_large": TOO_LARGE_413, "length_required": LENGTH_REQUIRED_411}


@dataclass
class Arrival:
    """The bytes of one request received so far, and when its first byte came (``time.monotonic``)."""

    data: bytearray = field(default_factory=bytearray)
    started: float | None = None
    head_end: int = -1  # index just after CRLF CRLF once the head is complete
    wanted: int = 0  # total bytes (head and body) to gather before handing over
    scanned: int = 0  # bytes already searched for CRLF CRLF
    buffered: bool = True  # False for an upload, whose body the thread reads
    expect: bool = False  # the client waits for "100 Continue" before sending its body
    chunked: bool = False  # the body is chunked: wanted is known once its last chunk has arrived
    chunk_pos: int = 0  # where the next chunk-size (or trailer) line starts
    chunk_crlf: bool = False  # the CRLF ending a chunk's data is due at chunk_pos
    chunk_data: int = 0  # the chunks' data bytes so far
    trailers: bool = False  # past the zero-size chunk: trailer lines until a blank one
    line_scanned: int = 0  # how far the current line has been searched for its CRLF


def head_limit(cfg: Any) -> int:
    """The largest request head gunicorn's parser accepts with ``cfg``'s limits (plus room for a PROXY line).

    Parameters
    ----------
    cfg : a gunicorn ``Config``.

    Returns
    -------
    Bytes; a head that reaches this size without ending is handed to the parser, which refuses it (400/431).
    """
    line = cfg.limit_request_line if 0 < cfg.limit_request_line < MAX_REQUEST_LINE else MAX_REQUEST_LINE
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
    size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
    return line + 2 + fields * (size + 2) + 4 + 4096


@dataclass(frozen=True)
class BodyPlan:
    """What to do with a request's body, decided from its head (see ``plan_body``)."""

    length: int = 0  # Content-Length bytes to buffer
    chunked: bool = False  # buffer a chunked body up to its last chunk
    expect: bool = False  # the client waits for "100 Continue" (HTTP/1.1 ``Expect: 100-continue``)
    thread: bool = False  # an upload: the thread reads the body (under ``ReadDeadline``)
    refuse: str = ""  # "too_large" (413) or "length_required" (411): answer at once, do not read the body


def _request_path(target: bytes) -> bytes:
    """The path of a request target (origin or absolute form), without its query."""
    if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        authority_and_path = target.split(b"//", 1)[1]
        slash = authority_and_path.find(b"/")
        target = authority_and_path[slash:] if slash >= 0 else b"/"
    return target.split(b"?", 1)[0].split(b"#", 1)[0]


def plan_body(head: bytes, limit: int = BODY_BUFFER_BYTES) -> BodyPlan:
    """How to gather a request's body before a thread takes the request.

    Parameters
    ----------
    head : the request head, up to and excluding the blank line.
    limit : the largest body buffered (and accepted at all, but on ``UPLOAD_ENDPOINTS``).

    Returns
    -------
    A ``BodyPlan``: buffer ``length`` bytes or a chunked body; let the thread read an upload's body; or refuse
    (``413`` over ``limit`` but on an upload endpoint, ``411`` for a chunked upload). A framing gunicorn's
    parser refuses (duplicate or malformed lengths, a transfer coding other than a final ``chunked``, chunked
    HTTP/1.0, both framings) gets an empty plan: the head alone is handed over and the parser answers 400/501.

    Examples
    --------
    >>> plan_body(b"POST /a HTTP/1.1\\r\\nContent-Length: 12").length
    12
    >>> plan_body(b"POST /a HTTP/1.1\\r\\nTransfer-Encoding: chunked").chunked
    True
    >>> plan_body(b"POST /a HTTP/1.1\\r\\nContent-Length: 2000000").refuse
    'too_large'
    >>> plan_body(b"POST /api/v1/imports HTTP/1.1\\r\\nContent-Length: 2000000").thread
    True
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    method, target, version = parts if len(parts) == 3 else (b"", b"", b"")
    length, bad_length, codings, expect = None, False, [], False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding":
            codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
        elif name == b"expect":
            expect = expect or value.lower() == b"100-continue"
        elif name == b"content-length":
            if length is not None or not value.isdigit():
                bad_length = True
            else:
                length = int(value)
    path = _request_path(target)
    upload = (method, path) in UPLOAD_ENDPOINTS
    # a request that may carry photos is read by the thread when large; chunked, it is buffered as any other
    # (a JSON report may come chunked; photos must announce their length)
    photos = method == b"POST" and PHOTO_UPLOADS.fullmatch(path) is not None
    expect = expect and version == b"HTTP/1.1"  # RFC 9110 10.1.1: ignored in HTTP/1.0
    if codings:
        if (codings[-1] != b"chunked" or codings.count(b"chunked") != 1 or length is not None or bad_length
                or version != b"HTTP/1.1"):
            return BodyPlan()
        return BodyPlan(refuse="length_required") if upload else BodyPlan(chunked=True, expect=expect)
    if bad_length or not length:
        return BodyPlan()
    if length <= limit:
        return BodyPlan(length=length, expect=expect)
    return BodyPlan(thread=True) if upload or photos else BodyPlan(refuse="too_large")


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _chunk_size(line: bytes) -> int | None:
    """The size of a chunk-size line (extensions ignored: the parser checks them), or None when malformed."""
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or not _HEX.issuperset(digits):
        return None
    digits = digits.lstrip(b"0") or b"0"
    return int(digits, 16) if len(digits) <= 15 else 1 << 62


def scan_chunks(arrival: Arrival, limit: int = BODY_BUFFER_BYTES) -> str:
    """Follow a chunked body's framing in ``arrival.data`` from where the last call stopped.

    Returns
    -------
    ``"done"`` (``arrival.wanted`` is then the end of the body), ``"more"`` (wait for more bytes), ``"large"``
    (over ``limit`` bytes of data or ``CHUNK_FRAMING_BYTES`` of framing besides) or ``"bad"`` (malformed:
    handed to the parser, which refuses it).
    """
    data = arrival.data
    while True:
        pos = arrival.chunk_pos
        if arrival.chunk_crlf:
            if len(data) < pos + 2:
                break
            if data[pos:pos + 2] != b"\r\n":
                return "bad"
            pos = arrival.chunk_pos = pos + 2
            arrival.chunk_crlf = False
        end = data.find(b"\r\n", max(pos, arrival.line_scanned - 1))
        if end < 0:
            arrival.line_scanned = len(data)
            if not arrival.trailers and len(data) - pos > CHUNK_FRAMING_BYTES:
                return "bad"  # a size line longer than any the parser takes
            break
        arrival.line_scanned = 0
        if arrival.trailers:
            arrival.chunk_pos = end + 2
            if end == pos:  # the blank line closing the trailer section
                arrival.wanted = end + 2
                return "done"
            continue
        size = _chunk_size(bytes(data[pos:end]))
        if size is None:
            return "bad"
        arrival.chunk_pos = end + 2
        if size == 0:
            arrival.trailers = True
            continue
        arrival.chunk_data += size
        if arrival.chunk_data > limit:
            return "large"
        arrival.chunk_pos += size
        arrival.chunk_crlf = True
    framing = len(data) - arrival.head_end - arrival.chunk_data
    return "large" if framing > CHUNK_FRAMING_BYTES else "more"


class BodyTooSlow(TimeoutError):
    """A body read by a thread fell behind the minimum rate after the grace period."""


class ReadDeadline:
    """Replaces a ``SocketUnreader``'s ``chunk`` (its one ``recv``): the overall deadline of point 5.

    Each read waits at most until ``started + grace_s + received / min_bytes_per_s`` (and at most the socket's
    own timeout); past it the read raises ``BodyTooSlow``, as does any later one, and ``expired`` tells the
    worker to close the connection. ``arm`` restarts the clock for each request.
    """

    def __init__(self, unreader: Any, log: Any = None, client: Any = None, grace_s: float = UPLOAD_GRACE_S,
                 min_bytes_per_s: float = UPLOAD_MIN_BYTES_PER_S) -> None:
        self.sock = unreader.sock
        self.recv = type(unreader).chunk.__get__(unreader)  # the class's own chunk(), bound
        self.log, self.client = log, client
        self.grace_s, self.min_bytes_per_s = grace_s, min_bytes_per_s
        unreader.chunk = self
        self.arm()

    @classmethod
    def of(cls, unreader: Any, log: Any = None, client: Any = None, grace_s: float = UPLOAD_GRACE_S,
           min_bytes_per_s: float = UPLOAD_MIN_BYTES_PER_S) -> ReadDeadline:
        """The deadline installed on ``unreader``, installing one (with these limits) the first time."""
        installed = vars(unreader).get("chunk")
        return installed if isinstance(installed, cls) else cls(unreader, log, client, grace_s, min_bytes_per_s)

    def arm(self) -> None:
        self.started, self.received, self.expired = time.monotonic(), 0, False

    def deadline(self) -> float:
        return self.started + self.grace_s + self.received / self.min_bytes_per_s

    def __call__(self, size_hint: int | None = None) -> bytes:
        remaining = self.deadline() - time.monotonic()
        if self.expired or remaining <= 0:
            self._expire()
        prior = self.sock.gettimeout()
        bound = prior is None or remaining < prior  # whether this deadline, not the idle timeout, applies
        self.sock.settimeout(remaining if bound else prior)
        try:
            data = self.recv(size_hint)
        except TimeoutError:
            if bound:
                self._expire()
            raise
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(prior)
        self.received += len(data)
        return data

    def _expire(self) -> None:
        if not self.expired and self.log is not None:
            elapsed = time.monotonic() - self.started
            self.log.info("closing %s: request body too slow (%d bytes in %.0f s; at least %d B/s after %.0f s)",
                          self.client, self.received, elapsed, self.min_bytes_per_s, self.grace_s)
        self.expired = True
        raise BodyTooSlow("request body too slow")


def _bare_lf(data: bytearray, start: int) -> bool:
    """Whether an LF not preceded by CR lies at or after ``start`` (before the end of the head, if any)."""
    at = data.find(b"\n", start)
    while at >= 0:
        if at == 0 or data[at - 1] != 0x0D:
            return True
        if at >= 3 and data[at - 3:at + 1] == b"\r\n\r\n":
            return False  # the head ends here: what follows is the body
        at = data.find(b"\n", at + 1)
    return False


class BufferingThreadWorker(gthread.ThreadWorker):
    """gthread whose threads only take requests that have fully arrived (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limit = head_limit(self.cfg)
        self.arrivals: weakref.WeakKeyDictionary[Any, Arrival] = weakref.WeakKeyDictionary()
        self.arrivals_lock = threading.Lock()  # pool threads share it (a connection is in one at a time)
        self.lingering: OrderedDict[socket.socket, list[float]] = OrderedDict()  # sock -> [deadline, drained]
        self.upload_grace_s, self.upload_min_bytes_per_s = UPLOAD_GRACE_S, UPLOAD_MIN_BYTES_PER_S

    def load_wsgi(self) -> None:
        """gthread's, then the limits on bodies a thread reads from the app's settings (``create_app`` keeps
        them under ``CITYGRID_SETTINGS``): configuration is read once, by ``Settings.from_env``."""
        super().load_wsgi()
        settings = getattr(self.wsgi, "config", {}).get("CITYGRID_SETTINGS")
        if settings is not None:
            self.upload_grace_s = settings.upload_grace_s
            self.upload_min_bytes_per_s = settings.upload_min_bytes_per_s

    # -------------------------------------------------------------------------------- gathering a request
    def handle(self, conn: Any) -> Any:
        """Gather what has arrived; hand a complete request to gthread, or the connection back to the poller."""
        if self.cfg.is_ssl or conn.is_http2 or negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            return super().handle(conn)
        try:
            verdict = self.gather(conn)
        except OSError:  # reset by the peer, or the like
            verdict = "closed"
        if verdict == "wait":
            return gthread._DEFER
        with self.arrivals_lock:
            arrival = self.arrivals.pop(conn, None)
        if verdict != "ready" or arrival is None:
            self._refuse(conn, ANSWERS.get(verdict, b""))
            return False
        conn.init()
        conn.parser.unreader.unread(bytes(arrival.data))
        conn.body_buffered = arrival.buffered  # then gunicorn must not send its own "100 Continue"
        ReadDeadline.of(conn.parser.unreader, self.log, conn.client, self.upload_grace_s,
                        self.upload_min_bytes_per_s).arm()
        return super().handle(conn)

    def gather(self, conn: Any) -> str:
        """Read what is available into the connection's ``Arrival``; ``"ready"`` (hand it over), ``"wait"``
        (more to come), ``"late"`` (over a deadline), ``"busy"`` (over the buffer budget), ``"too_large"``
        (413), ``"length_required"`` (411) or ``"closed"``.

        The steps: the connection's arrival (``_arrival``), what the socket holds (``_receive``), the head until
        it is complete (``_gather_head``), then the body it announces (``_gather_body``)."""
        arrival = self._arrival(conn)
        ended = self._receive(conn, arrival)
        if not arrival.data:
            return "closed" if ended else "wait"
        now = time.monotonic()
        if arrival.started is None:
            arrival.started = now
        if arrival.head_end < 0:
            verdict = self._gather_head(arrival, now, ended)
            if verdict is not None:
                return verdict
        return self._gather_body(conn, arrival, now, ended)

    def _arrival(self, conn: Any) -> Arrival:
        """The connection's ``Arrival`` (a new one for a new request); on a kept-alive connection what the parser
        read ahead comes first."""
        with self.arrivals_lock:
            arrival = self.arrivals.get(conn)
            if arrival is None:
                arrival = self.arrivals[conn] = Arrival()
        if arrival.started is None and conn.parser is not None:
            arrival.data += conn.parser.unreader.take_buffered()
        return arrival

    def _receive(self, conn: Any, arrival: Arrival) -> bool:
        """Append what has arrived, without waiting, up to the most a request may buffer (its head, a 1 MiB body
        and a chunked body's framing); whether the client ended its stream."""
        cap = self.head_limit + BODY_BUFFER_BYTES + (CHUNK_FRAMING_BYTES if arrival.chunked else 0)
        # Non-blocking for real: with a timeout set (a pipelined request comes straight from the last one),
        # Python's recv would first wait up to that timeout for the socket to become readable.
        conn.sock.setblocking(False)
        while len(arrival.data) < cap:
            try:
                chunk = conn.sock.recv(min(RECV_BYTES, cap - len(arrival.data)), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            if not chunk:
                return True
            arrival.data += chunk
        return False

    def _gather_head(self, arrival: Arrival, now: float, ended: bool) -> str | None:
        """Look for the end of the head in what has arrived, and once it is there plan its body (``plan_body``).

        Returns the verdict while the head is incomplete, too large or refused, else None (the body is next)."""
        found = arrival.data.find(b"\r\n\r\n", max(0, arrival.scanned - 3))
        bare_lf = _bare_lf(arrival.data, arrival.scanned)
        arrival.scanned = len(arrival.data)
        if found < 0:
            if len(arrival.data) >= self.head_limit or bare_lf:
                return "ready"  # too large, or a bare LF: gunicorn's parser refuses it (400/431)
            if ended:
                return "closed"
            return "late" if now - arrival.started > HEAD_DEADLINE_S else self._budget(arrival)
        arrival.head_end = found + 4
        if arrival.head_end > self.head_limit:
            return "ready"  # too large: gunicorn's parser refuses it
        plan = plan_body(bytes(arrival.data[:found]))
        if plan.refuse:
            return plan.refuse
        arrival.wanted = arrival.head_end + plan.length
        arrival.buffered, arrival.expect, arrival.chunked = not plan.thread, plan.expect, plan.chunked
        arrival.chunk_pos = arrival.head_end
        return None

    def _gather_body(self, conn: Any, arrival: Arrival, now: float, ended: bool) -> str:
        """The verdict on a request whose head is complete: ``"ready"`` once its body is all here (up to its
        length, or a chunked one to its end), else wait for it, asking for it once (``100 Continue``) if the
        client expects that, until the body deadline."""
        if arrival.chunked:
            state = scan_chunks(arrival)
            if state == "large":
                return "too_large"
            complete = state != "more"
        else:
            complete = len(arrival.data) >= arrival.wanted
        if complete:
            return "ready"
        if ended:
            return "closed"  # a truncated body is not served: the app could take it for the whole one
        if arrival.expect:  # the head is complete, the body is not: ask for it, once
            arrival.expect = False
            if conn.sock.send(CONTINUE_100, socket.MSG_DONTWAIT) != len(CONTINUE_100):
                return "closed"  # a client not reading what it is sent
        return "late" if now - arrival.started > BODY_DEADLINE_S else self._budget(arrival)

    def _budget(self, arrival: Arrival) -> str:
        """``"wait"``, or ``"busy"`` when this buffer is large and the worker's buffers together exceed the
        budget."""
        if len(arrival.data) < BUDGET_CHECK_BYTES:
            return "wait"
        with self.arrivals_lock:
            held = sum(len(a.data) for a in list(self.arrivals.values()))
        return "busy" if held > BUFFER_BUDGET_BYTES else "wait"

    @staticmethod
    def _refuse(conn: Any, answer: bytes) -> None:
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer, socket.MSG_DONTWAIT)

    def handle_request(self, req: Any, conn: Any) -> bool:
        """gthread's, with an idle timeout on the socket while the app reads the body and writes the answer;
        the connection closes after a body read past its ``ReadDeadline``."""
        conn.sock.settimeout(SOCKET_IDLE_TIMEOUT_S)
        if getattr(conn, "body_buffered", False):
            req._expected_100_continue = False  # sent from gather if needed; the body is here anyway
        keep_alive = super().handle_request(req, conn)
        return keep_alive and not ReadDeadline.of(conn.parser.unreader).expired

    # -------------------------------------------------------------------------------- closing without blocking
    def finish_request(self, conn: Any, fs: Any) -> None:
        """gthread's, except that a connection that ends lingers in the poller instead of on this thread."""
        try:
            ending = not fs.cancelled() and fs.exception() is None and not fs.result()
        except Exception:
            ending = False
        if not ending:
            super().finish_request(conn, fs)
            return
        self.nr_conns -= 1
        with self.arrivals_lock:
            self.arrivals.pop(conn, None)
        sock = conn.sock
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self._drain)
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self.lingering[sock] = [time.monotonic() + LINGER_S, 0]

    def _drain(self, sock: socket.socket) -> None:
        """Read and discard what a closing client still sends; close at its end of stream or the byte cap."""
        try:
            data = sock.recv(LINGER_MAX_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry = self.lingering.get(sock)
        if entry is None:
            return
        entry[1] += len(data)
        if not data or entry[1] >= LINGER_MAX_BYTES:
            self._close_lingering(sock)

    def _close_lingering(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(sock)
        util.close(sock)

    def murder_pending(self) -> None:
        """gthread's (close connections idle past ``keepalive``), then close expired lingering ones."""
        super().murder_pending()
        now = time.monotonic()
        while self.lingering:
            sock, (deadline, _) = next(iter(self.lingering.items()))
            if deadline > now:
                break
            self._close_lingering(sock)
