"""Machinery of the multi-node suite (issue 8): a real `redis-server`, kvs-signaling nodes on
`--store redis://...`, and a small synchronous WebSocket client for the signaling protocol.

- `RedisServer` runs the Debian `redis-server` (or $KVS_REDIS_SERVER, e.g. valkey-server) on a
  free loopback port in a directory of its own, with the persistence the "nothing acknowledged
  is lost" promise needs: `--appendonly yes --appendfsync always --save ''`. It can be paused
  (SIGSTOP: a Redis that hangs), killed (SIGKILL) and restarted on the same port and AOF
  directory. Its exit is checked at `stop()` (exit code 0 after SIGTERM, unless the test killed
  it).
- `start_node()` is the Python suite's `Server` (tests/interop/python/kvs_harness.py) with
  `--store redis://127.0.0.1:PORT`, the cluster flags every node of a test shares, and a short
  node lease when the binary has the flag (`--node-lease`), so a killed node's presence expires
  in seconds rather than the default 15 s.
- `stop_checked()` / `stop_all()`: every node's shutdown is checked, never swallowed: after
  SIGTERM it must exit with code 0 within `EXIT_BOUND` (`Server.stop`); a node that exited by
  itself before teardown (a crash) is a failure too, unless the test killed it on purpose
  (`Server.kill()`).
- `Ws` wraps `websockets.sync.client` (the package the aiortc viewer uses): open-mode URLs
  (`?X-Amz-ChannelARN=...&X-Amz-ClientId=...`, no signature needed without --credentials, as in
  crates/server/tests/ws_signaling.rs), never a proxy, frames parsed as JSON.
"""
from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from kvs_harness import Server, ShutdownError, binary  # noqa: E402

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

# The node lease the suite asks for (when the binary has --node-lease): short enough that the
# kill -9 test is quick, long enough that a live node on a busy 2-core CI machine keeps its lease.
TEST_LEASE = os.environ.get("KVS_TEST_NODE_LEASE", "5s")


# --- Redis -----------------------------------------------------------------------------------
def redis_binary() -> str:
    env = os.environ.get("KVS_REDIS_SERVER")
    if env:
        return env
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                             else None)
    if not found:
        raise RuntimeError("redis-server not found: `apt-get install redis-server` (scripts/test.sh does it), "
                           "or set KVS_REDIS_SERVER")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """One RESP command on a fresh connection; returns the raw first reply line (b'+PONG')."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        req = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        s.sendall(req)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


# The per-channel keys of docs/deployment.md 'What is stored where': presence, then the held
# messages, their order and their replacement index.
HELD_AND_PRESENCE = ("pr", "hm", "hq", "hx")


class RedisServer:
    """One redis-server process on 127.0.0.1:PORT with its AOF in `dir`."""

    def __init__(self, dir: Path, port: int | None = None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.killed = False  # the current process was killed on purpose (kill -9)
        self.starts = 0
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0):
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        self.starts += 1
        self.killed = False
        log = self.dir / f"redis-{self.starts}.log"
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--logfile", str(log)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {args}\n{self.log()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server not answering PING within {timeout}s\n{self.log()}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            return resp_command(self.port, "PING").startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        out = []
        for p in sorted(self.dir.glob("redis-*.log")):
            out.append(p.read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def cli(self, *args: str, timeout: float = 10.0) -> list[str]:
        """redis-cli (or valkey-cli, beside the server binary) against this server; the output's
        lines."""
        cli = redis_binary().replace("redis-server", "redis-cli").replace("valkey-server", "valkey-cli")
        out = subprocess.run([cli, "-p", str(self.port), *args], capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, (args, out.returncode, out.stderr)
        return [line for line in out.stdout.splitlines() if line]

    def keys_of_channel(self, arn: str) -> list[str]:
        """Every key that names the channel's ARN (docs/deployment.md 'What is stored where':
        presence `pr:ARN` and held messages `hm:ARN`, `hq:ARN`, `hx:ARN`)."""
        assert not any(ch in arn for ch in "*?[]\\"), arn  # used as a SCAN pattern
        return sorted(self.cli("--scan", "--pattern", f"*:{arn}"))

    def held_and_presence_keys(self, arn: str) -> list[str]:
        """The channel's presence and held-message keys (`pr`, `hm`, `hq`, `hx`), leaving out
        anything else a store may keep under the ARN (a deletion marker, say)."""
        return [k for k in self.keys_of_channel(arn)
                if any(k.endswith(f":{kind}:{arn}") for kind in HELD_AND_PRESENCE)]

    def pause(self):
        """SIGSTOP: Redis keeps its sockets but answers nothing (the hung-Redis case)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """kill -9: nothing but what is already in the AOF survives."""
        if self.proc and self.proc.poll() is None:
            self.killed = True
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies on SIGKILL too; be explicit
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0):
        """SIGTERM (after SIGCONT, in case it is paused); it must exit with 0 within `timeout`.
        A redis-server that died by itself (not by `kill()`) is reported too."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            if not self.killed and self.proc.returncode != 0:
                raise AssertionError(f"redis-server had exited by itself with {self.proc.returncode}\n{self.log()}")
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"redis-server did not exit within {timeout}s of SIGTERM\n{self.log()}") from None
        if rc != 0:
            raise AssertionError(f"redis-server exited with {rc} after SIGTERM\n{self.log()}")


# --- Debian tools the suite runs (faketime, nginx, haproxy) -----------------------------------
def ensure_tool(path: str, package: str) -> str:
    """The tool at `path` (or on PATH), installed with apt-get when it is missing and we may
    (root, apt-get present): the suite's own setup, as scripts/test.sh does for redis-server.
    Missing and not installable is a failure, never a silent skip."""
    name = Path(path).name
    found = path if Path(path).exists() else shutil.which(name)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "install", "-y", "-qq", package],
                    ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
            subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
            found = path if Path(path).exists() else shutil.which(name)
            if found:
                return found
    raise RuntimeError(f"{path} is missing: apt-get install {package} (scripts/test.sh should install it)")


def libfaketime() -> str:
    """Debian's libfaketime (package `faketime`/`libfaketime`), for a node with a skewed clock."""
    for p in Path("/usr/lib").glob("*/faketime/libfaketime.so.1"):
        return str(p)
    ensure_tool("/usr/bin/faketime", "faketime")
    for p in Path("/usr/lib").glob("*/faketime/libfaketime.so.1"):
        return str(p)
    raise RuntimeError("libfaketime.so.1 not found after installing faketime")


def skewed_clock_env(seconds: int) -> dict:
    """Environment that runs a process with its wall clock `seconds` off (libfaketime, LD_PRELOAD).
    Only the wall clock (CLOCK_REALTIME: SystemTime, leases, Date headers) is skewed; the
    monotonic clock tokio's timers use is left alone (FAKETIME_DONT_FAKE_MONOTONIC), as on a
    machine whose NTP is off."""
    return {"LD_PRELOAD": libfaketime(), "FAKETIME": f"{seconds:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def clock_offset(node: Server) -> float:
    """How far the node's wall clock is from ours, from its Date header (1 s resolution)."""
    import email.utils
    import requests
    t0 = time.time()
    r = requests.get(node.url + "/health", timeout=10)
    t1 = time.time()
    date = r.headers.get("Date")
    assert date, (node.url, dict(r.headers))
    return email.utils.parsedate_to_datetime(date).timestamp() - (t0 + t1) / 2


# --- nodes -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def serve_help() -> str:
    out = subprocess.run([binary(), "serve", "--help"], capture_output=True, text=True, timeout=30)
    return out.stdout + out.stderr


def has_flag(flag: str) -> bool:
    return flag in serve_help()


def lease_args() -> list[str]:
    return ["--node-lease", TEST_LEASE] if has_flag("--node-lease") else []


# Flags every node of the suite runs with: 2 viewers per channel (the cluster-wide limit test;
# tests that need AWS's 10 pass max_viewers=10), a short GO_AWAY grace and shutdown, no TURN
# relay (not under test, and three nodes would fight over port 3478).
SHUTDOWN_TIMEOUT = 3.0


def node_flags(max_viewers: int = 2) -> tuple[str, ...]:
    return ("--max-viewers", str(max_viewers), "--go-away-grace", "1s",
            "--shutdown-timeout", f"{SHUTDOWN_TIMEOUT:g}s", "--embedded-turn", "false")


NODE_FLAGS = node_flags()

# How long a node may take to exit after SIGTERM: its --shutdown-timeout (the longest it may
# drain) plus 5 s for a debug build on a busy 2-core machine to wind down. A node that hangs in
# shutdown (an abandoned waiter that keeps the hub from settling, issue 12) exceeds it.
EXIT_BOUND = SHUTDOWN_TIMEOUT + 5.0


def start_node(redis: RedisServer, *extra: str, env: dict | None = None, max_viewers: int = 2) -> Server:
    return Server(*node_flags(max_viewers), *lease_args(), *extra, store=redis.url, env=env)


def stop_checked(node: Server, bound: float = EXIT_BOUND) -> str | None:
    """SIGTERM the node and wait at most `bound` seconds (`Server.stop`, which checks the exit).
    None if it exited with 0 in time, had already exited with 0, or was killed on purpose
    (`Server.kill()`); else what went wrong, with the tail of its log."""
    try:
        node.stop(timeout=bound)
    except ShutdownError as e:
        return str(e)
    return None


def stop_all(nodes) -> None:
    """Stops every node (all of them, even when one fails) and raises one AssertionError naming
    every node whose shutdown failed."""
    failures = [f for f in (stop_checked(n) for n in nodes) if f]
    if failures:
        raise ShutdownError(f"{len(failures)} node(s) did not shut down cleanly:\n\n" + "\n\n".join(failures))


# --- WebSocket -------------------------------------------------------------------------------
def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else (obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())
    return base64.b64encode(raw).decode()


def ws_url(node: Server, arn: str, client_id: str | None = None) -> str:
    url = f"ws://127.0.0.1:{node.port}/?X-Amz-ChannelARN={quote(arn, safe='')}"
    if client_id is not None:
        url += f"&X-Amz-ClientId={quote(client_id, safe='')}"
    return url


class WsRefused(Exception):
    """The handshake was answered with an HTTP error (no upgrade)."""

    def __init__(self, status: int, body: bytes, headers):
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status, self.body, self.headers = status, body, headers

    def json(self):
        return json.loads(self.body)


class Ws:
    """A signaling connection: master when `client_id` is None, else a viewer. `url` (with `ssl`,
    an SSLContext for wss://) connects somewhere else than `node`'s open-mode URL: a presigned
    URL, a load balancer."""

    def __init__(self, node: Server | None, arn: str, client_id: str | None = None, open_timeout: float = 10.0,
                 url: str | None = None, ssl=None):
        self.node, self.arn, self.client_id = node, arn, client_id
        self.where = url.split("?", 1)[0] if url else f":{node.port}"
        kw = {"ssl": ssl} if ssl is not None else {}
        try:
            self.conn = ws_connect(url or ws_url(node, arn, client_id), proxy=None, compression=None,
                                   open_timeout=open_timeout, ping_interval=None, close_timeout=2,
                                   legacy=True, **kw)
        except InvalidStatus as e:
            r = e.response
            raise WsRefused(r.status_code, r.body or b"", r.headers) from None

    def send(self, action: str, payload: str, recipient: str | None = None, correlation_id: str | None = None):
        msg = {"action": action, "messagePayload": payload}
        if recipient is not None:
            msg["recipientClientId"] = recipient
        if correlation_id is not None:
            msg["correlationId"] = correlation_id
        self.conn.send(json.dumps(msg))

    def recv_within(self, timeout: float) -> dict | None:
        """The next frame, or None if none comes in time or the connection closes."""
        try:
            raw = self.conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            return None
        return json.loads(raw)

    def recv(self, timeout: float = 5.0) -> dict:
        try:
            raw = self.conn.recv(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"{self}: no frame within {timeout}s") from None
        except ConnectionClosed as e:
            raise AssertionError(f"{self}: closed ({e}) while waiting for a frame") from None
        return json.loads(raw)

    def closed_within(self, timeout: float) -> int | None:
        """Reads (and drops) frames until the connection closes; the close code, or None if it
        is still open after `timeout` (1006 for a socket dropped without a close frame)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.conn.recv(timeout=left)
            except TimeoutError:
                return None
            except ConnectionClosed as e:
                return e.rcvd.code if e.rcvd is not None else 1006

    def is_open(self) -> bool:
        from websockets.protocol import State
        return self.conn.protocol.state is State.OPEN

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def __repr__(self):
        who = "master" if self.client_id is None else f"viewer {self.client_id}"
        return f"<{who} on {self.where} {self.arn.rsplit('/', 2)[-2]}>"


def connect_status(node: Server, arn: str, client_id: str | None = None, open_timeout: float = 10.0) -> int:
    """101 if the connect is accepted (and closes it again), else the refusing HTTP status."""
    try:
        w = Ws(node, arn, client_id, open_timeout=open_timeout)
    except WsRefused as e:
        return e.status
    w.close()
    return 101


def metric(node: Server, name: str) -> float:
    """One value of the node's /metrics (Prometheus text, no labels)."""
    import requests
    text = requests.get(node.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in {node.url}/metrics")


# --- control plane ---------------------------------------------------------------------------
def outcome(r) -> str:
    if r.status_code == 200:
        return "ok"
    try:
        return r.json().get("__type", f"HTTP {r.status_code}")
    except ValueError:
        return f"HTTP {r.status_code} (not JSON)"


def race(calls):
    """Run the (node, operation, body) calls at (nearly) the same moment, one thread each;
    returns the responses in order."""
    barrier = threading.Barrier(len(calls))

    def go(call):
        node, op, body = call
        barrier.wait()
        return node.op(op, body)

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def create(node: Server, name: str, ttl: int | None = None) -> str:
    body = {"ChannelName": name}
    if ttl is not None:
        body["SingleMasterConfiguration"] = {"MessageTtlSeconds": ttl}
    r = node.op("CreateSignalingChannel", body)
    assert r.status_code == 200, (node.url, r.status_code, r.text)
    return r.json()["ChannelARN"]


def describe(node: Server, arn: str) -> dict:
    r = node.op("DescribeSignalingChannel", {"ChannelARN": arn})
    assert r.status_code == 200, (node.url, r.status_code, r.text)
    return r.json()["ChannelInfo"]


def update_ttl(node: Server, arn: str, ttl: int, version: str | None = None):
    v = version or describe(node, arn)["Version"]
    r = node.op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": v,
                                           "SingleMasterConfiguration": {"MessageTtlSeconds": ttl}})
    assert r.status_code == 200, (node.url, r.status_code, r.text)


def delete(node: Server, arn: str):
    r = node.op("DeleteSignalingChannel", {"ChannelARN": arn})
    assert r.status_code == 200, (node.url, r.status_code, r.text)


def wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
