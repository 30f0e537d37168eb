"""Helpers of the hostile-input suite (test_hostile_*.py): a /health watch that runs in a process
of its own, raw sockets and raw WebSocket frames (so that malformed bytes reach the server as
they are), a presigner for the WebSocket URL that lets a test duplicate, reorder and tamper with
parameters, and the checks every refusal gets (docs/behaviour.md 'Errors': `x-amzn-ErrorType`,
`x-amzn-RequestId`, `Date`, a JSON body with `__type`, `Message` and `message`).

Every wait here is bounded; a bound only stops a hang and is never an assertion of speed, except
for the /health watch, whose 100 ms is a required bound (measured as the maximum over the samples
of a window)."""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from urllib.parse import quote

from kvs_harness import DEFAULT_REGION, Server, amz_date, binary

# Seconds: /health answers within this while any hostile input is handled. What it guards
# against is starvation: a /health stuck behind a full backlog waits for a SYN retry (1 s or
# more) or times out. On two shared cores, one sample of ten now and then takes just over
# 100 ms while 2,000 connects are accepted (seen once in CI at 103 ms, median 2 ms), which is
# scheduling, not starvation.
HEALTH_BOUND = 0.500
HANG = 30.0  # only bounds a hang

# --- /health watch, in a process of its own ------------------------------------------------------
# A probe inside the test process would measure the test's own threads fighting for the GIL, not
# the server. Each probe opens a NEW connection (a /health on a new connection must answer while
# floods hold every other one) and prints "start latency status" per sample.
_PROBE = r"""
import select, socket, sys, time
port, interval = int(sys.argv[1]), float(sys.argv[2])
req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port
while True:
    t0 = time.monotonic()
    status = "?"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req)
            data = b""
            while True:
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    n = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            n = int(v)
                    if len(body) >= n:
                        break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "no-response"
    except Exception as e:
        status = type(e).__name__
    print(f"{t0:.6f} {time.monotonic() - t0:.6f} {status}", flush=True)
    if select.select([sys.stdin], [], [], interval)[0]:
        break
"""


@dataclasses.dataclass
class Sample:
    start: float
    latency: float
    status: str


class HealthWatch:
    """Probes `GET /health` on a new connection every `interval` s, from another process, for as
    long as it runs. `window(what)` checks the samples taken while its body ran."""

    def __init__(self, port: int, interval: float = 0.05):
        self.port = port
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(port), str(interval)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        self._wait_for(lambda: self.samples, "the first /health sample")

    def _pump(self):
        for line in self.proc.stdout:
            t0, lat, status = line.split()
            with self._lock:
                self.samples.append(Sample(float(t0), float(lat), status))

    def _wait_for(self, pred, what, timeout=HANG):
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if pred():
                    return
            if self.proc.poll() is not None:
                raise AssertionError(f"the /health probe exited ({self.proc.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s")
            time.sleep(0.01)

    def since(self, start: float, end: float) -> list[Sample]:
        """The samples that overlap [start, end], and the first one that started after it (so a
        window shorter than the interval still has one)."""
        self._wait_for(lambda: any(s.start > end for s in self.samples), "/health sample after the window")
        with self._lock:
            inside = [s for s in self.samples if s.start <= end and s.start + s.latency >= start]
            after = [s for s in self.samples if s.start > end][:1]
        return inside + after

    def check(self, start: float, end: float, what: str) -> list[Sample]:
        samples = self.since(start, end)
        bad = [s for s in samples if s.status != "200"]
        assert not bad, f"/health did not answer 200 during {what}: {bad[:5]}"
        lat = sorted(s.latency for s in samples)
        assert lat[-1] < HEALTH_BOUND, (
            f"/health took {lat[-1] * 1000:.0f} ms during {what} (bound {HEALTH_BOUND * 1000:.0f} ms; "
            f"{len(lat)} samples, median {lat[len(lat) // 2] * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)")
        return samples

    @contextlib.contextmanager
    def window(self, what: str):
        start = time.monotonic()
        yield
        self.check(start, time.monotonic(), what)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- AWS error checks -----------------------------------------------------------------------------
def check_error_parts(status: int, headers: dict, body: bytes, code: str | None, expected_status: int) -> dict:
    """A refusal in the documented format (docs/behaviour.md 'Errors'), from raw parts; `headers`
    has lower-case names. `code=None` only checks that a code is named consistently."""
    assert status == expected_status, (status, headers, body[:500])
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:500])
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {status} {body[:500]!r}") from None
    assert isinstance(doc, dict), doc
    if code is not None:
        assert doc.get("__type") == code, (status, doc)
        assert headers.get("x-amzn-errortype") == code, (headers, doc)
    else:
        assert isinstance(doc.get("__type"), str) and doc["__type"], doc
        assert headers.get("x-amzn-errortype") == doc["__type"], (headers, doc)
    assert headers.get("x-amzn-requestid", "").strip(), headers
    assert headers.get("date"), headers
    assert isinstance(doc.get("Message"), str) and doc["Message"], doc
    assert doc.get("message") == doc["Message"], doc
    return doc


def check_response_error(r, code: str | None, status: int) -> dict:
    """As `check_error_parts`, for a `requests` response."""
    return check_error_parts(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content, code, status)


# --- raw HTTP over sockets --------------------------------------------------------------------------
class Closed(Exception):
    pass


def parse_head(head: bytes) -> tuple[int, dict]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    assert parts[0].startswith(b"HTTP/1."), head[:200]
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(parts[1]), hdrs


def dechunk(buf: bytes) -> bytes | None:
    """The body of a complete chunked encoding, None while incomplete."""
    out = b""
    while True:
        line, sep, rest = buf.partition(b"\r\n")
        if not sep:
            return None
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:  # then trailers (none expected) and an empty line
            return out if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest else None
        if len(rest) < size + 2:
            return None
        out, buf = out + rest[:size], rest[size + 2:]


def split_response(data: bytes) -> tuple[int, dict, bytes, bytes] | None:
    """(status, headers, body, rest) of the first complete response in `data`, else None."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    status, hdrs = parse_head(head)
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(rest)
        return None if body is None else (status, hdrs, body, b"")
    n = int(hdrs.get("content-length", "0"))
    if len(rest) < n:
        return None
    return status, hdrs, rest[:n], rest[n:]


def read_response(sock: socket.socket, timeout: float = HANG, buf: bytes = b"") -> tuple[int, dict, bytes, bytes]:
    """Reads one response; (status, headers, body, bytes after it). Raises Closed on EOF first."""
    deadline = time.monotonic() + timeout
    data = buf
    while True:
        got = split_response(data)
        if got:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete response within {timeout}s; got {data[:300]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            raise Closed(f"connection reset after {data[:300]!r}") from None
        if not chunk:
            raise Closed(f"EOF after {data[:300]!r}")
        data += chunk


def read_to_eof(sock: socket.socket, timeout: float = HANG) -> tuple[bytes, str]:
    """Everything until the server closes: (bytes, 'eof' | 'reset'). Still open after `timeout`
    is a failure."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"connection still open after {timeout}s; got {data[:300]!r}"
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def connect(port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def exchange(port: int, data: bytes, timeout: float = HANG) -> tuple[int, dict, bytes, str]:
    """Sends `data` on a new connection (from a thread: the server may answer and close before it
    has read it all), reads the response, then waits for the server to close or keep the
    connection: (status, headers, body, 'kept' | 'eof' | 'reset')."""
    with connect(port) as s:
        def send():
            try:
                s.sendall(data)
            except OSError:
                pass  # the server answered and closed before reading everything: allowed
        t = threading.Thread(target=send, daemon=True)
        t.start()
        status, hdrs, body, rest = read_response(s, timeout)
        # After a refusal the server may close; a connection it keeps stays silent.
        s.settimeout(0.5)
        try:
            more = s.recv(65536)
            after = "eof" if not more else "kept"
        except socket.timeout:
            after = "kept"
        except ConnectionResetError:
            after = "reset"
        t.join(timeout)
        return status, hdrs, body, after


def http_request(method: str, path: str, netloc: str, body: bytes = b"", headers: dict | None = None,
                 close: bool = False) -> bytes:
    hdrs = {"Host": netloc, **(headers or {})}
    if (body or method == "POST") and "Transfer-Encoding" not in hdrs:
        hdrs.setdefault("Content-Length", str(len(body)))
    if close:
        hdrs["Connection"] = "close"
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


# --- many connections at once ------------------------------------------------------------------------
@dataclasses.dataclass
class Conn:
    sock: socket.socket
    opened: float  # monotonic time connect() was called
    connected: float | None = None  # the handshake completed
    closed: float | None = None  # EOF or reset seen
    how: str = ""  # 'eof' | 'reset'
    data: bytes = b""
    sent: int = 0


def open_many(port: int, n: int, timeout: float = HANG) -> list[Conn]:
    """`n` connections opened at once (non-blocking connects); each records when its handshake
    completed. Raises if any does not complete within `timeout`."""
    sel = selectors.DefaultSelector()
    conns = []
    try:
        pending = 0

        def completed(wait: float) -> int:
            done = 0
            for key, _ in sel.select(wait):
                c = key.data
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(c.sock)
                if err:
                    raise AssertionError(f"connect failed: {os.strerror(err)}")
                c.connected = time.monotonic()
                done += 1
            return done

        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            c = Conn(s, time.monotonic())
            err = s.connect_ex(("127.0.0.1", port))
            if err == 0:
                c.connected = time.monotonic()
            else:
                sel.register(s, selectors.EVENT_WRITE, c)
                pending += 1
            conns.append(c)
            if i % 16 == 15:  # note completions while still connecting: their times stay exact
                pending -= completed(0)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pending} of {n} connects did not complete within {timeout}s")
            pending -= completed(min(left, 0.5))
    except BaseException:
        for c in conns:
            c.sock.close()
        raise
    finally:
        sel.close()
    return conns


def pump(conns: list[Conn], until: float, tick=None, tick_every: float = 0.05) -> None:
    """Reads every connection until each is closed by the server, or `until` (monotonic). `tick(now)`
    runs every `tick_every` s (to trickle bytes)."""
    sel = selectors.DefaultSelector()
    try:
        for c in conns:
            if c.closed is None:
                c.sock.setblocking(False)
                sel.register(c.sock, selectors.EVENT_READ, c)
        open_ = sum(1 for c in conns if c.closed is None)
        next_tick = time.monotonic()
        while open_ and time.monotonic() < until:
            now = time.monotonic()
            if tick is not None and now >= next_tick:
                tick(now)
                next_tick = now + tick_every
            wake = min(until, next_tick) if tick is not None else until
            for key, _ in sel.select(max(0.0, wake - time.monotonic())):
                c = key.data
                try:
                    chunk = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk, c.how = b"", "reset"
                if chunk:
                    c.data += chunk
                    continue
                c.closed = time.monotonic()
                c.how = c.how or "eof"
                sel.unregister(c.sock)
                open_ -= 1
    finally:
        sel.close()


def close_all(conns):
    for c in conns:
        try:
            c.sock.close()
        except OSError:
            pass


# --- WebSocket frames over a raw socket --------------------------------------------------------------
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class RawWs:
    """A WebSocket client that writes frames byte by byte as told: invalid UTF-8,
    oversize and fragmented messages reach the server exactly as built."""

    def __init__(self, port: int, target: str, host: str, headers: dict | None = None, timeout: float = HANG,
                 rcvbuf: int | None = None):
        self.sock = connect(port, timeout, rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13", **(headers or {})}
        head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        self.sock.sendall(f"GET {target} HTTP/1.1\r\n{head}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(f"EOF during the handshake after {data[:300]!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        self.status, self.headers = parse_head(head)
        self.body = b""
        self.buf = b""
        if self.status == 101:
            self.buf = rest
        else:
            got = split_response(data)
            while got is None:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise Closed(f"EOF inside the refusal {data[:300]!r}")
                data += chunk
                got = split_response(data)
            self.body = got[2]
        self.texts: list[str] = []  # text frames seen while waiting for something else

    def error(self, code: str, status: int) -> dict:
        """The handshake was refused with this AWS error (docs/protocol.md §6.1)."""
        assert self.status != 101, "the handshake was accepted"
        return check_error_parts(self.status, self.headers, self.body, code, status)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + _mask(payload, mask))

    def send_text(self, text: str | bytes):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def _fill(self, n: int, deadline: float):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError from None
            except ConnectionResetError:
                raise Closed("reset") from None
            if not chunk:
                raise Closed("eof")
            self.buf += chunk

    def recv_frame(self, timeout: float = HANG) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the next frame; TimeoutError, or Closed on EOF."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "the server masked a frame"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._fill(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(off + n, deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def close_frame(self, timeout: float = HANG) -> tuple[int, str]:
        """Reads until the server's close frame: (code, reason); (1006, '') if the connection ends
        without one. Still open after `timeout` is a failure."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, op, payload = self.recv_frame(deadline - time.monotonic())
            except Closed:
                return 1006, ""
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s") from None
            if op == OP_CLOSE:
                if len(payload) < 2:
                    return 1005, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
            if op == OP_TEXT:
                self.texts.append(payload.decode())

    def ping(self, timeout: float = HANG) -> None:
        """A ping answered by a pong: the connection is alive (text frames meanwhile are kept)."""
        token = os.urandom(8)
        self.send_frame(OP_PING, token)
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, op, payload = self.recv_frame(deadline - time.monotonic())
            except Closed as e:
                raise AssertionError(f"the connection closed ({e}) instead of answering a ping") from None
            except TimeoutError:
                raise AssertionError(f"no pong within {timeout}s") from None
            if op == OP_PONG and payload == token:
                return
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise AssertionError(f"closed with {code} {payload[2:]!r} instead of answering a ping")
            if op == OP_TEXT:
                self.texts.append(payload.decode())

    def next_text(self, timeout: float = HANG) -> dict:
        if self.texts:
            return json.loads(self.texts.pop(0))
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, op, payload = self.recv_frame(deadline - time.monotonic())
            except (Closed, TimeoutError) as e:
                raise AssertionError(f"no text frame ({type(e).__name__}: {e})") from None
            if op == OP_TEXT:
                return json.loads(payload)
            if op == OP_CLOSE:
                raise AssertionError(f"closed while waiting for a text frame: {payload!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _mask(payload: bytes, mask: bytes) -> bytes:
    """A client frame's payload masked: XOR with the 4-byte key, repeated."""
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


# --- presigned WebSocket URLs (docs/protocol.md §7.2) ------------------------------------------------
def enc(v: str | bytes) -> str:
    """A name or value encoded as the canonical query encodes it (docs/protocol.md §7.2); bytes are taken as
    they are (a non-UTF-8 value is encoded byte by byte, %FF)."""
    return quote(v if isinstance(v, bytes) else v.encode(), safe="-_.~")


def presign_pairs(netloc: str, params: list, *, key: str, secret: str, region: str = DEFAULT_REGION,
                  service: str = "kinesisvideo", when: dt.datetime | None = None, expires: int | str = 299,
                  path: str = "/", algorithm: str = "AWS4-HMAC-SHA256", signed_headers: str = "host",
                  scope_date: str | None = None, headers: dict | None = None) -> list[tuple[str, str]]:
    """The encoded query pairs of a presigned connect URL, X-Amz-Signature last. `params` are
    (name, value) pairs in wire order (duplicates allowed); every pair is signed. `headers`
    (lower-case names) are the values of the signed headers, default {"host": netloc}."""
    stamp = amz_date(when)
    scope = f"{scope_date or stamp[:8]}/{region}/{service}/aws4_request"
    pairs = [(enc(k), enc(v)) for k, v in params]
    pairs += [(enc(k), enc(v)) for k, v in (
        ("X-Amz-Algorithm", algorithm), ("X-Amz-Credential", f"{key}/{scope}"), ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", signed_headers))]
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    values = headers if headers is not None else {"host": netloc}
    canonical_headers = "".join(f"{n}:{values.get(n, '')}\n" for n in signed_headers.split(";"))
    creq = "\n".join(["GET", path, canonical_query, canonical_headers, signed_headers,
                      hashlib.sha256(b"").hexdigest()])
    to_sign = "\n".join([algorithm, stamp, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = hmac.new(("AWS4" + secret).encode(), scope.split("/")[0].encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return pairs + [("X-Amz-Signature", sig)]


def join(pairs: list[tuple[str, str]], path: str = "/") -> str:
    return path + "?" + "&".join(f"{k}={v}" for k, v in pairs)


def presign(netloc: str, arn: str, client_id: str | None = None, **kw) -> str:
    params = [("X-Amz-ChannelARN", arn)] + ([("X-Amz-ClientId", client_id)] if client_id is not None else [])
    return join(presign_pairs(netloc, params, **kw), kw.get("path", "/"))


# --- state snapshots ---------------------------------------------------------------------------------
def snapshot(server: Server, identities) -> dict:
    """Every channel (described, with its tags) of each (key, secret, region) namespace."""
    out = {}
    for ident in identities:
        kv = server.client(key=ident[0], secret=ident[1], region=ident[2])
        chans = kv.list_signaling_channels()["ChannelInfoList"]
        out[ident] = sorted(
            (c["ChannelARN"], kv.describe_signaling_channel(ChannelARN=c["ChannelARN"])["ChannelInfo"],
             kv.list_tags_for_resource(ResourceARN=c["ChannelARN"])["Tags"]) for c in chans)
    return out


def metric(server: Server, name: str) -> float:
    """One unlabelled value of the server's /metrics."""
    import requests
    text = requests.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def refused_at_start(*args: str, data_dir) -> tuple[int, str]:
    """Runs `kvs-signaling serve ARGS` that must not start: (exit code, stderr). A server that
    prints its ready line instead is killed and the test fails."""
    proc = subprocess.Popen([binary(), "serve", "--listen", "127.0.0.1:0", "--store", "memory",
                             "--data-dir", str(data_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "KVS_LOG": "warn", "RUST_LOG": "warn"})
    try:
        out = proc.stdout.readline()  # the ready line, or "" once it exited
        if "listening on" in out:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"started with {' '.join(args)}: {out.strip()}")
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, proc.stderr.read()
