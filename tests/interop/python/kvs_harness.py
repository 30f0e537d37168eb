"""Harness for the Python interop suite: runs the real `kvs-signaling` binary and talks to it
with real AWS clients (boto3, the AWS CLI) and with hand-built HTTP requests.

Kept out of conftest.py so that the crash test (tests/interop/crash) can import it too.

- `Server` starts `kvs-signaling serve --listen 127.0.0.1:0 --store memory|--data-dir DIR ...`,
  waits for the ready line (`listening on http://HOST:PORT`, docs/design.md §2), keeps draining
  stdout, keeps stderr in a log file (shown when a start or a stop fails) and stops with SIGTERM.
  Every stop is checked: the server must exit within `SHUTDOWN_BOUND` seconds of SIGTERM with
  exit code 0, else `ShutdownError` (it is then killed with SIGKILL). A server that died on its
  own before the stop is reported the same way. Only `kill()` (kill -9) is unchecked.
- `Server.client()` is a boto3 client with client-side validation and retries off, so every
  invalid value reaches the server (docs/protocol.md §3.1: the server must enforce max/pattern/enum).
- `sign()` is an independent SigV4 signer (docs/protocol.md §7.1) that lets a test choose the date, the
  signed headers, the scope and the secret, so tampered requests can be built precisely.
  `test_auth.py` checks it against botocore's own signer first.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import requests
from botocore.config import Config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
READY_RE = re.compile(r"listening on http://(\S+):(\d+)")

DEFAULT_KEY = "AKIDEXAMPLE"
DEFAULT_SECRET = "open-mode-secret"
DEFAULT_REGION = "us-east-1"

# The control-plane operations of the issue, name -> HTTP path (docs/protocol.md §2).
OPS = {
    "CreateSignalingChannel": "/createSignalingChannel",
    "DescribeSignalingChannel": "/describeSignalingChannel",
    "ListSignalingChannels": "/listSignalingChannels",
    "UpdateSignalingChannel": "/updateSignalingChannel",
    "DeleteSignalingChannel": "/deleteSignalingChannel",
    "GetSignalingChannelEndpoint": "/getSignalingChannelEndpoint",
    "TagResource": "/TagResource",
    "UntagResource": "/UntagResource",
    "ListTagsForResource": "/ListTagsForResource",
}


def binary() -> str:
    """The server binary: $KVS_BIN, else target/release, else target/debug."""
    env = os.environ.get("KVS_BIN")
    if env:
        if not Path(env).exists():
            raise RuntimeError(f"KVS_BIN={env} does not exist")
        return env
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "kvs-signaling"
        if p.exists():
            return str(p)
    raise RuntimeError("no kvs-signaling binary: run `cargo build --release` (or set KVS_BIN)")


def client_config(**kw) -> Config:
    return Config(parameter_validation=False, retries={"max_attempts": 0},
                  connect_timeout=10, read_timeout=30, max_pool_connections=32, **kw)


# One boto3 session for every client (creating a session per client costs ~0.5 s), and clients
# cached per server and identity: botocore clients are safe to share between threads.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


# How long a test server may take to exit after SIGTERM. Only bounds a hang: a server with no
# request or connection left exits in well under a second (its drain has nothing to wait for);
# one that sits out its whole --shutdown-timeout (10 s by default) is a bug to report.
SHUTDOWN_BOUND = 10.0


class ServerStartError(RuntimeError):
    pass


class ShutdownError(AssertionError):
    """A server did not exit in time after SIGTERM, or exited with an unexpected code."""


def describe_exit(rc: int) -> str:
    """`-9 (SIGKILL)` for a death by signal, else the number."""
    if rc is not None and rc < 0:
        try:
            return f"{rc} ({signal.Signals(-rc).name})"
        except ValueError:
            pass
    return str(rc)


def stop_all(servers) -> None:
    """Stops every server (each checked as `Server.stop` does) and raises one `ShutdownError`
    naming every failure, after all were stopped."""
    failures = []
    for s in servers:
        try:
            s.stop()
        except ShutdownError as e:
            failures.append(str(e))
    if failures:
        raise ShutdownError(f"{len(failures)} of {len(servers)} servers did not shut down cleanly:\n"
                            + "\n---\n".join(failures))


class Server:
    """One running `kvs-signaling serve` process."""

    def __init__(self, *extra: str, data_dir: str | Path | None = None, store: str | None = None,
                 listen: str = "127.0.0.1:0", ready_timeout: float = 30.0, env: dict | None = None,
                 preexec_fn=None):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._clients = {}
        args = [binary(), "serve", "--listen", listen]
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
            if store:
                args += ["--store", store]
        elif "--store" not in extra:
            args += ["--store", store or "memory"]
        args += list(extra)
        self.args = args
        self._log = tempfile.NamedTemporaryFile(prefix="kvs-server-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.setdefault("KVS_LOG", "warn")
        full_env.setdefault("RUST_LOG", "warn")
        full_env.update(env or {})
        self._ended = False
        self.stop_seconds: float | None = None
        # `preexec_fn` runs in the child before exec (the hostile-input suite lowers the open-file
        # limit of a server with it).
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, env=full_env, preexec_fn=preexec_fn)
        self.stdout_lines: list[str] = []
        lines: queue.Queue = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                log = self.log()
                self.kill()
                raise ServerStartError(f"no ready line within {ready_timeout}s: {args}\n{log}")
            if line is None:
                rc = self.proc.wait()
                log = self.log()
                self._drop_log()
                raise ServerStartError(f"server exited with {rc} before ready: {args}\n{log}")
            m = READY_RE.search(line)
            if m:
                self.ready_line = line.strip()
                self.host, self.port = m.group(1), int(m.group(2))
                break
        # A wildcard listen address is reached over loopback (the only place tests send traffic).
        reach = "127.0.0.1" if self.host in ("0.0.0.0", "[::]") else self.host
        self.url = f"http://{reach}:{self.port}"
        self.netloc = f"{reach}:{self.port}"

    # --- process ---------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout: float = SHUTDOWN_BOUND, expect_code: int | None = 0) -> int:
        """Signal the server and wait up to `timeout` s for it to exit; returns the exit code.

        Raises `ShutdownError` (after SIGKILL) if it is still running then, and if its exit code
        is not `expect_code` (None: any), including a server that had already died on its own.
        A second stop (or a stop after `kill()`) only returns the code of the first."""
        if self._ended:
            return self.proc.returncode
        self._ended = True
        died_before = self.proc.poll() is not None
        if not died_before:
            t0 = time.monotonic()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise ShutdownError(f"server did not exit within {timeout}s of {signal.Signals(sig).name} "
                                    f"(killed with SIGKILL): {self.args}\n{self.log()}") from None
            self.stop_seconds = time.monotonic() - t0
        rc = self.proc.returncode
        if expect_code is not None and rc != expect_code:
            how = ("had died on its own before it was stopped" if died_before
                   else f"exited after {signal.Signals(sig).name}")
            raise ShutdownError(f"server {how} with exit code {describe_exit(rc)}, expected {expect_code}: "
                                f"{self.args}\n{self.log()}")
        self._drop_log()
        return rc

    def kill(self) -> int:
        """kill -9; returns the exit code (-9 unless it had died already). Not checked."""
        self._ended = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait()
        self._drop_log()
        return rc

    def _drop_log(self):
        if not os.environ.get("KVS_KEEP_LOGS"):
            try:
                os.unlink(self._log.name)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # A failed shutdown is an error of the test. When the body already failed, its error
        # stays the one reported and the shutdown failure is added to it, not dropped.
        try:
            self.stop()
        except ShutdownError as e:
            if exc is None:
                raise
            exc.add_note(f"and then the server's shutdown failed: {e}")
        return False

    # --- clients ---------------------------------------------------------------------------
    def client(self, key=DEFAULT_KEY, secret=DEFAULT_SECRET, region=DEFAULT_REGION, service="kinesisvideo",
               endpoint_url=None, session_token=None, fresh=False):
        """A boto3 client for this server (cached unless `fresh`)."""
        ident = (key, secret, region, service, endpoint_url or self.url, session_token)
        with _SESSION_LOCK:
            if fresh or ident not in self._clients:
                c = _SESSION.client(service, endpoint_url=ident[4], region_name=region, aws_access_key_id=key,
                                    aws_secret_access_key=secret, aws_session_token=session_token,
                                    config=client_config())
                if fresh:
                    return c
                self._clients[ident] = c
            return self._clients[ident]

    def post(self, path: str, body, *, key=DEFAULT_KEY, secret=DEFAULT_SECRET, region=DEFAULT_REGION,
             service="kinesisvideo", sign_request=True, when: dt.datetime | None = None,
             headers: dict | None = None, signed_headers=None, host: str | None = None,
             drop: tuple = (), after_sign: dict | None = None, method="POST",
             timeout: float = 30) -> requests.Response:
        """Send `body` (dict -> JSON, str/bytes as is) to `path`, SigV4-signed by `sign()`.

        `headers` are added before signing; `after_sign` (a dict, or a function of the signed
        headers giving one) are set, and `drop` removed, after signing, to tamper with a signed request. `host` is the Host header to sign and send."""
        data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else
                                                     json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json", "Host": host or self.netloc, **(headers or {})}
        if sign_request:
            hdrs = sign(method, path, hdrs, data, key=key, secret=secret, region=region, service=service,
                        when=when, signed_headers=signed_headers)
        hdrs.update((after_sign(hdrs) if callable(after_sign) else after_sign) or {})
        hdrs = {k: v for k, v in hdrs.items() if k.lower() not in {d.lower() for d in drop}}
        return requests.request(method, self.url + path, data=data, headers=hdrs, timeout=timeout)

    def op(self, operation: str, body, **kw) -> requests.Response:
        return self.post(OPS[operation], body, **kw)


# --- SigV4 (docs/protocol.md §7.1), independent of botocore ---------------------------------------------
def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def amz_date(when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def sign(method: str, path: str, headers: dict, body: bytes, *, key: str, secret: str, region: str,
         service: str = "kinesisvideo", when: dt.datetime | None = None, signed_headers=None,
         scope_date: str | None = None) -> dict:
    """Return `headers` plus X-Amz-Date and Authorization. `signed_headers` (lower-case names)
    defaults to every header given plus x-amz-date; the Host header must be among `headers`."""
    out = dict(headers)
    stamp = amz_date(when)
    out["X-Amz-Date"] = stamp
    lower = {k.lower(): " ".join(str(v).strip().split()) for k, v in out.items()}
    names = sorted(signed_headers if signed_headers is not None else lower.keys())
    canonical_headers = "".join(f"{n}:{lower.get(n, '')}\n" for n in names)
    sh = ";".join(names)
    canonical = "\n".join([method, path, "", canonical_headers, sh, hashlib.sha256(body).hexdigest()])
    scope = f"{scope_date or stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), scope.split("/")[0])
    for part in (region, service, "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={sh}, Signature={signature}"
    return out


def raw_http(server: Server, request: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send raw bytes over a socket and parse a (non-chunked or chunked) HTTP/1.x response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                hdrs = _parse_headers(head)
                n = hdrs.get("content-length")
                if n is not None and len(rest) >= int(n):
                    break
                if hdrs.get("transfer-encoding", "").lower() == "chunked" and rest.endswith(b"0\r\n\r\n"):
                    break
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode()
    hdrs = _parse_headers(head)
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body, buf = body + buf[:size], buf[size + 2:]
        rest = body
    return int(status_line.split()[1]), hdrs, rest


def _parse_headers(head: bytes) -> dict:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        out[k.strip().lower()] = v.strip()
    return out


# --- assertions ------------------------------------------------------------------------------
def error_code(exc) -> str:
    return exc.response["Error"]["Code"]


def http_status(exc) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def assert_client_error(exc, code: str, status: int):
    """A botocore ClientError with exactly this error code and HTTP status."""
    assert (error_code(exc), http_status(exc)) == (code, status), exc.response


def assert_aws_error(r: requests.Response, code: str | set, status: int):
    """An AWS-style JSON error (behaviour.md 'Errors'): exactly `status`, and `code` (or one of
    a set of codes, where the model allows several) as x-amzn-ErrorType and JSON __type."""
    codes = {code} if isinstance(code, str) else set(code)
    assert codes, "name the error code(s) expected"
    assert "json" in r.headers.get("Content-Type", ""), (r.status_code, r.headers, r.text[:500])
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r.status_code} {r.text[:500]!r}")
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert body.get("__type") in codes, (r.status_code, body)
    assert r.headers.get("x-amzn-ErrorType") in codes, (r.headers, body)
    assert body.get("__type") == r.headers.get("x-amzn-ErrorType"), (r.headers, body)
    assert isinstance(body.get("Message"), str) and body["Message"], body
    return body


def wait_until(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def load_model(name: str = "kinesisvideo") -> dict:
    """The service model: shared/models beside the repository when present (or $KVS_MODELS),
    else the identical one botocore ships."""
    files = {"kinesisvideo": "kinesisvideo_2017-09-30.json",
             "kinesis-video-signaling": "kinesis-video-signaling_2019-12-04.json"}
    candidates = [Path(os.environ["KVS_MODELS"])] if os.environ.get("KVS_MODELS") else []
    candidates += [ROOT.parent / "shared" / "models", ROOT / "shared" / "models"]
    for d in candidates:
        p = d / files[name]
        if p.exists():
            return json.loads(p.read_text())
    import botocore.loaders
    return botocore.loaders.Loader().load_service_model(name, "service-2")


def aws_cli(server: Server, *args: str, key=DEFAULT_KEY, secret=DEFAULT_SECRET, region=DEFAULT_REGION,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`aws kinesisvideo ARGS --endpoint-url URL --output json`, run as `python -m awscli`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=region, AWS_PAGER="",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_MAX_ATTEMPTS="1",
               AWS_RETRY_MODE="standard")
    return subprocess.run([sys.executable, "-m", "awscli", "kinesisvideo", *args, "--endpoint-url", server.url,
                           "--output", "json"], env=env, capture_output=True, text=True, timeout=timeout)


def netloc_of(url: str) -> str:
    return urlsplit(url).netloc
