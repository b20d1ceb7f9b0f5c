"""``serve --prod``: the worker count, and the buffering worker that keeps slow clients off the threads.

Unit tests drive ``BufferingThreadWorker.gather`` over a socket pair; the end-to-end tests run
``citygrid serve --prod --workers 1`` (one process of 4 threads: what a few slow clients used to stop) on a
loopback port and hold dozens of trickling or lingering connections while ordinary requests are served.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import replace
from types import SimpleNamespace

import pytest

from citygrid.config import Settings
from citygrid.webmap import slowclients
from citygrid.webmap.prod import WORKER_CLASS, ProdServer
from citygrid.webmap.slowclients import BodyPlan, BufferingThreadWorker, head_limit, plan_body


# ------------------------------------------------------------------------------------------------ worker count
def test_workers_default_to_two_per_core_plus_one_unless_given():
    cores = os.cpu_count() or 1
    assert ProdServer(lambda: None, "127.0.0.1", 8000).cfg.workers == 2 * cores + 1
    assert ProdServer(lambda: None, "127.0.0.1", 8000, workers=None).cfg.workers == 2 * cores + 1
    assert ProdServer(lambda: None, "127.0.0.1", 8000, workers=3).cfg.workers == 3
    cfg = ProdServer(lambda: None, "127.0.0.1", 8000).cfg
    assert cfg.worker_class_str == WORKER_CLASS and cfg.worker_class is BufferingThreadWorker


@pytest.mark.parametrize(("args", "expected"), [([], 2 * (os.cpu_count() or 1) + 1), (["--workers", "2"], 2)])
def test_serve_prod_passes_the_worker_count(beijing_db, monkeypatch, args, expected):
    from click.testing import CliRunner

    from citygrid.cli import cli

    seen = {}
    monkeypatch.setattr(ProdServer, "run", lambda self: seen.update(workers=self.cfg.workers))
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "serve", "--prod", "--port", "8999",
                                      *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == {"workers": expected}


def test_a_new_worker_is_warmed_before_it_takes_requests(beijing_db):
    """``warm_up`` leaves one pooled database session per worker thread (each past its first coordinate
    transformation) and every page template compiled; with the database down it only logs."""
    from citygrid.app import create_app
    from citygrid.webmap.prod import warm_up

    app = create_app({"CITYGRID_SETTINGS": beijing_db})
    engine = app.extensions["citygrid"].engine
    warm_up(app, connections=3)
    assert engine.pool.checkedin() >= 3
    compiled = {key[1] for key in list(app.jinja_env.cache.keys())}
    assert {"overview_header.html", "footer.html"} <= compiled
    backend = app.extensions["citygrid"]
    down = create_app({"CITYGRID_SETTINGS": beijing_db,
                       "CITYGRID_BACKEND": type(backend)(engine=None, connect=_refusing, database="down")})
    warm_up(down)  # logged, not raised
    engine.dispose()


@contextlib.contextmanager
def _refusing():
    raise OSError("database down")
    yield


# ------------------------------------------------------------------------------------------------ gather, unit
class FakeConn:
    """What ``gather`` uses of gthread's ``TConn``: the socket and the parser (None until ``init``)."""

    def __init__(self, sock: socket.socket, parser=None) -> None:
        self.sock, self.parser = sock, parser


@pytest.fixture
def worker():
    """A worker with only what ``gather`` needs (no process, no poller)."""
    w = BufferingThreadWorker.__new__(BufferingThreadWorker)
    w.head_limit = head_limit(SimpleNamespace(limit_request_line=4094, limit_request_fields=100,
                                              limit_request_field_size=8190))
    w.arrivals, w.arrivals_lock = weakref.WeakKeyDictionary(), threading.Lock()
    return w


@pytest.fixture
def pair():
    client, server = socket.socketpair()
    server.setblocking(False)
    yield client, server
    client.close()
    server.close()


def test_a_head_is_gathered_across_reads_and_handed_over_whole(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    assert worker.gather(conn) == "wait"  # nothing yet
    client.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    assert worker.gather(conn) == "wait"
    client.sendall(b"st: x\r\n\r")
    assert worker.gather(conn) == "wait"
    client.sendall(b"\n")
    assert worker.gather(conn) == "ready"
    assert bytes(worker.arrivals[conn].data) == b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_small_body_is_gathered_too(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
    assert worker.gather(conn) == "wait"
    client.sendall(b"67890")
    assert worker.gather(conn) == "ready"


MIB2 = b"%d" % (2 * 1024 * 1024)


@pytest.mark.parametrize(("head", "plan"), [
    (b"POST /a HTTP/1.1\r\ncontent-length:  7 ", BodyPlan(length=7)),
    (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-Continue", BodyPlan(length=5, expect=True)),
    (b"POST /a HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue", BodyPlan(length=5)),  # ignored in 1.0
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked", BodyPlan(chunked=True)),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nExpect: 100-continue",
     BodyPlan(chunked=True, expect=True)),
    # framings the parser refuses (400/501) are handed over without a body
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, identity", BodyPlan()),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", BodyPlan()),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5", BodyPlan()),
    (b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked", BodyPlan()),
    (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6", BodyPlan()),
    (b"POST /a HTTP/1.1\r\nContent-Length: -5", BodyPlan()),
    (b"GET /a HTTP/1.1", BodyPlan()),
    # over 1 MiB: refused at once, but on the upload endpoint (whose body the thread reads, not chunked)
    (b"POST /a HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
    (b"POST /a HTTP/1.1\r\nContent-Length: " + b"9" * 40, BodyPlan(refuse="too_large")),
    (b"GET /api/v1/imports HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
    (b"POST /api/v1/imports/x HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
    (b"POST /api/v1/imports HTTP/1.1\r\nContent-Length: " + MIB2 + b"\r\nExpect: 100-continue",
     BodyPlan(thread=True)),
    (b"POST /api/v1/imports?x=1 HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(thread=True)),
    (b"POST http://h:80/api/v1/imports HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(thread=True)),
    (b"POST /api/v1/imports HTTP/1.1\r\nContent-Length: 1000", BodyPlan(length=1000)),
    (b"POST /api/v1/imports HTTP/1.1\r\nTransfer-Encoding: chunked", BodyPlan(refuse="length_required")),
    # requests that may carry photos (#21): a report, photos, a workflow step; read by the thread when large,
    # buffered as any other when chunked (a JSON report may come chunked)
    (b"POST /api/v1/cases HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(thread=True)),
    (b"POST /api/v1/cases/12/photos HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(thread=True)),
    (b"POST /api/v1/cases/12/transitions?x=1 HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(thread=True)),
    (b"POST /api/v1/cases HTTP/1.1\r\nTransfer-Encoding: chunked", BodyPlan(chunked=True)),
    (b"POST /api/v1/cases/12/events HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
    (b"POST /api/v1/cases/x/photos HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
    (b"GET /api/v1/cases/12/photos HTTP/1.1\r\nContent-Length: " + MIB2, BodyPlan(refuse="too_large")),
])
def test_plan_body(head, plan):
    assert plan_body(head) == plan


def test_kept_alive_read_ahead_comes_first(worker, pair):
    from gunicorn.http.unreader import SocketUnreader

    client, server = pair
    unreader = SocketUnreader(server)
    unreader.unread(b"GET /b HTTP/1.1\r\nHost")
    conn = FakeConn(server, parser=SimpleNamespace(unreader=unreader))
    client.sendall(b": x\r\n\r\n")
    assert worker.gather(conn) == "ready"
    assert bytes(worker.arrivals[conn].data) == b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    assert unreader.buf.getvalue() == b""


@pytest.mark.parametrize(("sent", "outcome"), [
    (b"GET / HTTP/1.1\r\n", "closed"),  # end of stream in the head: nothing to serve
    (b"GET / HTTP/1.0\r\n\r\n", "ready"),  # a complete request followed by end of stream is still served
    (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", "closed"),  # a truncated body is not
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n", "closed"),
])
def test_end_of_stream(worker, pair, sent, outcome):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(sent)
    client.shutdown(socket.SHUT_WR)
    assert worker.gather(conn) == outcome


def _gather_while_waiting(worker, conn, server: socket.socket) -> str:
    """``gather`` as the poller would call it: whenever the socket is readable, until it answers other than
    ``"wait"`` (or nothing more arrives)."""
    verdict = worker.gather(conn)
    while verdict == "wait" and select.select([server], [], [], 5)[0]:
        verdict = worker.gather(conn)
    return verdict


@pytest.mark.parametrize("head", [b"GET / HTTP/1.1\nHost: x\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 900_000])
def test_bare_lf_or_an_oversized_head_goes_to_the_parser_for_its_400(worker, pair, head):
    client, server = pair
    conn = FakeConn(server)
    threading.Thread(target=client.sendall, args=(head,), daemon=True).start()
    assert _gather_while_waiting(worker, conn, server) == "ready"
    assert len(worker.arrivals[conn].data) <= worker.head_limit + slowclients.BODY_BUFFER_BYTES


def test_over_the_buffer_budget_is_busy(worker, pair, monkeypatch):
    monkeypatch.setattr(slowclients, "BUFFER_BUDGET_BYTES", 100_000)
    client, server = pair
    conn = FakeConn(server)
    request = b"POST /a HTTP/1.1\r\nContent-Length: 500000\r\n\r\n" + b"x" * 150_000
    threading.Thread(target=client.sendall, args=(request,), daemon=True).start()
    assert _gather_while_waiting(worker, conn, server) == "busy"


CHUNKED_HEAD = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_chunked_body_is_gathered_up_to_its_last_chunk_and_trailers(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    body = b"5\r\nhello\r\n3;name=value\r\n, w\r\n0\r\nX-Trailer: 1\r\n\r\n"
    following = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"  # a pipelined request: not part of this body
    client.sendall(CHUNKED_HEAD)
    assert worker.gather(conn) == "wait"
    for i in range(0, len(body) - 1, 3):  # in pieces that split size lines, data, CRLFs and trailers
        client.sendall(body[i:min(i + 3, len(body) - 1)])
        assert worker.gather(conn) == "wait"
    client.sendall(body[-1:] + following)
    assert worker.gather(conn) == "ready"
    arrival = worker.arrivals[conn]
    assert bytes(arrival.data) == CHUNKED_HEAD + body + following
    assert arrival.wanted == len(CHUNKED_HEAD + body) and arrival.chunk_data == 8


@pytest.mark.parametrize(("body", "outcome"), [
    (b"0\r\n\r\n", "ready"),  # an empty body
    (b"200000\r\n", "too_large"),  # a chunk over 1 MiB is refused when announced
    (b"80000\r\n" + b"x" * 0x80000 + b"\r\n80001\r\n", "too_large"),  # so are chunks adding up to more
    (b"1\r\nx\r\n" * 20_000, "too_large"),  # or more framing than data
    (b"zz\r\nabc", "ready"),  # a malformed size line: gunicorn's parser refuses it (400)
    (b"3\r\nabcX\r\n", "ready"),  # no CRLF after the data: refused by the parser too
])
def test_chunked_bodies_over_the_cap_or_malformed(worker, pair, body, outcome):
    client, server = pair
    conn = FakeConn(server)
    threading.Thread(target=client.sendall, args=(CHUNKED_HEAD + body,), daemon=True).start()
    assert _gather_while_waiting(worker, conn, server) == outcome


@pytest.mark.parametrize(("first", "steps"), [
    # a head still coming in after the head deadline
    (b"GET / HTTP/1.1\r\nX-Slow: a", [("HEAD_DEADLINE_S", b"a", "late")]),
    # a body whose head came in time: past the head deadline it may still come, past the body deadline it is late
    (b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n1", [("HEAD_DEADLINE_S", b"2", "wait"),
                                                           ("BODY_DEADLINE_S", b"3", "late")]),
    # a chunked body has the body deadline
    (CHUNKED_HEAD + b"1\r\n \r\n", [("BODY_DEADLINE_S", b"1\r\n \r\n", "late")]),
], ids=["head", "body", "chunked-body"])
def test_past_its_deadline_a_request_is_late(worker, pair, first, steps):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(first)
    assert worker.gather(conn) == "wait"
    for deadline, more, outcome in steps:
        worker.arrivals[conn].started -= getattr(slowclients, deadline) + 1  # as if the first byte came long ago
        client.sendall(more)
        assert worker.gather(conn) == outcome


def test_expect_100_continue_is_answered_by_the_worker_then_the_body_buffered(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert worker.gather(conn) == "wait"
    assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.sendall(b"12")
    assert worker.gather(conn) == "wait"
    client.sendall(b"345")
    assert worker.gather(conn) == "ready"
    assert not select.select([client], [], [], 0.2)[0]  # sent once only
    assert worker.arrivals[conn].buffered


def test_expect_100_continue_with_its_body_already_there_gets_no_100(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nab\r\n0\r\n\r\n")
    assert worker.gather(conn) == "ready"
    assert not select.select([client], [], [], 0.2)[0]


@pytest.mark.parametrize(("head", "outcome"), [
    (b"POST /api/v1/classify HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: " + MIB2, "too_large"),
    (b"POST /api/v1/imports HTTP/1.1\r\nTransfer-Encoding: chunked", "length_required"),
])
def test_refused_at_once_without_reading_the_body_or_sending_100(worker, pair, head, outcome):
    client, server = pair
    conn = FakeConn(server)
    client.sendall(head + b"\r\n\r\n")
    assert worker.gather(conn) == outcome
    assert not select.select([client], [], [], 0.2)[0]  # no 100 Continue


def test_an_upload_over_1_mib_is_left_to_the_thread(worker, pair):
    client, server = pair
    conn = FakeConn(server)
    head = b"POST /api/v1/imports HTTP/1.1\r\nContent-Length: " + MIB2 + b"\r\n\r\n"
    client.sendall(head + b"--boundary")
    assert worker.gather(conn) == "ready"
    assert bytes(worker.arrivals[conn].data) == head + b"--boundary"
    assert not worker.arrivals[conn].buffered


# ------------------------------------------------------------------------------------------------ read deadline
class FakeLog:
    def __init__(self) -> None:
        self.infos = []

    def info(self, message, *args) -> None:
        self.infos.append(message % args)


def _body_reader(server: socket.socket, length: int, log=None, *, grace_s: float, min_bytes_per_s: float):
    """gunicorn's reader of a ``length``-byte body over ``server``, as the thread has it (blocking socket with
    the idle timeout), with the worker's ``ReadDeadline`` installed (these limits, as a worker takes them from
    its app's settings)."""
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    server.settimeout(slowclients.SOCKET_IDLE_TIMEOUT_S)
    unreader = SocketUnreader(server)
    deadline = slowclients.ReadDeadline.of(unreader, log, ("127.0.0.1", 1), grace_s, min_bytes_per_s)
    assert slowclients.ReadDeadline.of(unreader) is deadline  # installed once per parser
    deadline.arm()
    return Body(LengthReader(unreader, length)), deadline


def test_the_read_deadline_cuts_off_a_trickling_body(pair):
    client, server = pair
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.05):
            with contextlib.suppress(OSError):
                client.send(b"x")

    threading.Thread(target=trickle, daemon=True).start()
    log = FakeLog()
    body, deadline = _body_reader(server, 1_000_000, log, grace_s=0.5, min_bytes_per_s=1000.0)
    try:
        with pytest.raises(slowclients.BodyTooSlow):
            body.read()
    finally:
        stop.set()
    assert deadline.expired and body.failed
    assert len(log.infos) == 1 and "too slow" in log.infos[0]
    with pytest.raises(TimeoutError):  # and any later read, without waiting
        deadline(10)
    assert server.gettimeout() == slowclients.SOCKET_IDLE_TIMEOUT_S  # the idle timeout is back


def test_the_read_deadline_gives_a_body_that_keeps_up_the_time_it_needs(pair):
    client, server = pair
    pieces = [b"x" * 100_000] * 12

    def send():  # 1.2 MB in about 1.2 s, past the grace period, but faster than the minimum rate
        for piece in pieces:
            client.sendall(piece)
            time.sleep(0.1)

    threading.Thread(target=send, daemon=True).start()
    body, deadline = _body_reader(server, 1_200_000, grace_s=0.5, min_bytes_per_s=100_000.0)
    assert len(body.read()) == 1_200_000
    assert not deadline.expired


def test_a_worker_takes_its_upload_limits_from_its_apps_settings(worker, monkeypatch):
    """Not from the environment: the app was built with settings (``create_app`` keeps them), and those count."""
    monkeypatch.setenv("CITYGRID_UPLOAD_GRACE_S", "99")
    settings = replace(Settings.from_env(), upload_grace_s=3.0, upload_min_bytes_per_s=500.0)
    worker.app = SimpleNamespace(wsgi=lambda: SimpleNamespace(config={"CITYGRID_SETTINGS": settings}))
    worker.upload_grace_s = worker.upload_min_bytes_per_s = None
    worker.load_wsgi()
    assert (worker.upload_grace_s, worker.upload_min_bytes_per_s) == (3.0, 500.0)


# ------------------------------------------------------------------------------------------------ end to end
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UPLOAD_GRACE_S = 2.0


@pytest.fixture(scope="module")
def prod_port(beijing_db):
    """``citygrid serve --prod --workers 1`` on a loopback port for the module."""
    port = _free_port()
    cmd = [sys.executable, "-m", "citygrid.cli", "--database", beijing_db.database, "serve", "--prod", "--workers",
           "1", "--port", str(port)]
    # a short grace for bodies the thread reads, so that a trickling upload is cut off within seconds
    env = {**os.environ, "CITYGRID_UPLOAD_GRACE_S": str(UPLOAD_GRACE_S)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                assert _get(port, "/healthz")[0] == 200
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Trickle:
    """``count`` connections that send ``start``, then ``piece`` every half second, until closed: by default
    a request head one byte at a time (a header that never ends)."""

    def __init__(self, port: int, count: int, start: bytes = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                 piece: bytes = b"a") -> None:
        self.piece = piece
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        for s in self.socks:
            s.sendall(start)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for s in self.socks:
                with contextlib.suppress(OSError):  # closed by the server (its head or body deadline)
                    s.send(self.piece)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_healthz_answers_while_50_clients_trickle_their_heads(prod_port):
    trickle = Trickle(prod_port, 50)
    try:
        for _ in range(8):  # more requests than the worker has threads
            status, body = _get(prod_port, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        trickle.close()


def test_keep_alive_two_requests_on_one_connection_and_a_json_post(prod_port, beijing_admin_token):
    trickle = Trickle(prod_port, 20)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", prod_port, timeout=30)
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert first.status == 200 and first.read()
        sock = conn.sock
        conn.request("GET", "/api/v1/openapi.json")
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["openapi"].startswith("3.")
        assert conn.sock is sock  # the same connection, kept alive
        body = json.dumps({"text": "井盖丢了", "kind": "component"}).encode()
        conn.request("POST", "/api/v1/classify", body=body,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {beijing_admin_token}"})
        third = conn.getresponse()
        answer = json.loads(third.read())
        assert third.status == 200 and len(answer["top"]) == 3
        assert conn.sock is sock
        conn.close()
    finally:
        trickle.close()


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` responses with a Content-Length each; returns their status lines."""
    data, lines = b"", []
    while len(lines) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1")
            length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                          if line.lower().startswith("content-length:"))
            if len(data) >= head_end + 4 + length:
                lines.append(head.split("\r\n")[0].encode())
                data = data[head_end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {len(lines)} responses"
        data += chunk
    return lines


def test_pipelined_requests_and_a_body_sent_in_pieces(prod_port, beijing_admin_token):
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_responses(s, 2) == [b"HTTP/1.1 200 OK"] * 2
        body = json.dumps({"text": "路灯不亮", "kind": "component"}).encode()
        s.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + beijing_admin_token.encode() + b"\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 7):
            s.sendall(body[i:i + 7])
            time.sleep(0.05)
        assert _read_responses(s, 1) == [b"HTTP/1.1 200 OK"]


@pytest.mark.parametrize(("head", "status"), [
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", b"431"),  # over limit_request_field_size
    (b"GET / HTTP/1.1\nHost: x\n\n", b"400"),  # bare LF
])
def test_a_malformed_head_is_refused_by_the_parser(prod_port, head, status):
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(head)
        assert s.recv(65536).startswith(b"HTTP/1.1 " + status)


def test_clients_that_linger_after_a_closing_answer_do_not_stall_the_worker(prod_port):
    """gthread lingers (up to 2 s) on its main thread for each closing client; 50 idle ones would stall it."""
    lingering = [socket.create_connection(("127.0.0.1", prod_port), timeout=10) for _ in range(50)]
    try:
        for s in lingering:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # answered with Connection: close; never closed here
        for _ in range(4):
            assert _get(prod_port, "/healthz")[0] == 200
        assert all(s.recv(65536).startswith(b"HTTP/1.0 200") for s in lingering)
    finally:
        for s in lingering:
            s.close()


def TrickleChunks(port: int, count: int) -> Trickle:  # noqa: N802 (reads like the class it makes)
    """``count`` anonymous Open311 reports whose chunked bodies come one byte every half second (finding 1)."""
    return Trickle(port, count, b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                   b"1\r\n \r\n")


def test_healthz_answers_while_30_clients_trickle_chunked_bodies(prod_port):
    trickle = TrickleChunks(prod_port, 30)
    try:
        time.sleep(1)  # a few chunks each have arrived
        for _ in range(8):  # more requests than the worker has threads
            status, body = _get(prod_port, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        trickle.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"the server closed after {data!r}"
        data += chunk
    return data


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One answer with a Content-Length: its status line and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head.split(b"\r\n")[0], body + _recv_exactly(sock, length - len(body))


def _classify_head(token: str, framing: bytes) -> bytes:
    return (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n" + framing + b"\r\n\r\n")


def test_a_small_chunked_body_is_served(prod_port, beijing_admin_token):
    body = json.dumps({"text": "井盖丢了", "kind": "component"}).encode()
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(_classify_head(beijing_admin_token, b"Transfer-Encoding: chunked"))
        for i in range(0, len(body), 10):
            piece = body[i:i + 10]
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)
        s.sendall(b"0\r\n\r\n")
        status, answer = _read_answer(s)
        assert status == b"HTTP/1.1 200 OK" and len(json.loads(answer)["top"]) == 3
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # and the connection is kept alive
        assert _read_answer(s)[0] == b"HTTP/1.1 200 OK"


def test_expect_100_continue_gets_its_100_then_its_answer(prod_port, beijing_admin_token):
    body = json.dumps({"text": "路灯不亮", "kind": "component"}).encode()
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(_classify_head(beijing_admin_token, b"Expect: 100-continue\r\nContent-Length: %d" % len(body)))
        assert _recv_exactly(s, len(slowclients.CONTINUE_100)) == slowclients.CONTINUE_100
        s.sendall(body)
        status, answer = _read_answer(s)  # the final answer, with no second "100 Continue" before it
        assert status == b"HTTP/1.1 200 OK" and len(json.loads(answer)["top"]) == 3


@pytest.mark.parametrize(("head", "status"), [
    (b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: x\r\nContent-Length: " + MIB2, b"413"),
    (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " + MIB2, b"413"),
    (b"POST /api/v1/imports HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", b"411"),
])
def test_a_body_that_will_not_be_taken_is_refused_before_it_is_sent(prod_port, head, status):
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(head + b"\r\n\r\n")  # and no body: the answer must not wait for it
        line, answer = _read_answer(s)
        assert line.startswith(b"HTTP/1.1 " + status)  # not "100 Continue"
        assert json.loads(answer)["error"] in ("request_entity_too_large", "length_required")
        assert s.recv(65536) == b""  # and the connection is closed


def _multipart_head(token: str, length: int) -> bytes:
    return (b"POST /api/v1/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n" % length)


FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="census.csv"\r\n\r\n'


def test_an_upload_over_1_mib_is_read_by_the_app(prod_port, beijing_admin_token):
    body = FILE_PART + b"x" * (1536 * 1024) + b"\r\n--b--\r\n"  # no district field: the app answers 400
    with socket.create_connection(("127.0.0.1", prod_port), timeout=30) as s:
        s.sendall(_multipart_head(beijing_admin_token, len(body)) + body)
        status, answer = _read_answer(s)
    assert status.startswith(b"HTTP/1.1 400") and "district" in json.loads(answer)["message"]


def test_a_trickling_upload_is_cut_off_and_the_worker_keeps_answering(prod_port, beijing_admin_token):
    """The module's server has a grace of ``UPLOAD_GRACE_S`` (2 s) for bodies its threads read."""
    uploads = [socket.create_connection(("127.0.0.1", prod_port), timeout=60) for _ in range(6)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            for s in uploads:
                with contextlib.suppress(OSError):
                    s.send(b"x")

    for s in uploads:  # more uploads than the worker has threads, each far behind 64 KiB/s
        s.sendall(_multipart_head(beijing_admin_token, 2 * 1024 * 1024) + FILE_PART)
    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        for s in uploads:
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):  # until the server closes (within the 60 s socket timeout)
                    received += chunk
            assert not received or received.startswith(b"HTTP/1.1 400")  # the app took it for a client gone
        assert _get(prod_port, "/healthz")[0] == 200
    finally:
        stop.set()
        thread.join()
        for s in uploads:
            s.close()
