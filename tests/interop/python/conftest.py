"""Fixtures that run the real kvs-signaling binary and point real AWS clients at it."""
import datetime
import json
import os
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from unittest import mock

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT.parent / "shared" / "models"


def binary():
    env = os.environ.get("KVS_BIN")
    if env:
        return env
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "kvs-signaling"
        if p.exists():
            return str(p)
    raise RuntimeError("build kvs-signaling first (cargo build)")


class Server:
    def __init__(self, *extra, data_dir=None):
        args = [binary(), "serve", "--listen", "127.0.0.1:0"]
        if data_dir is None and "--store" not in extra:
            args += ["--store", "memory"]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        args += list(extra)
        env = dict(os.environ, KVS_LOG="warn")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for line in self.proc.stdout:
            if "listening on http://" in line:
                addr = line.split("listening on http://", 1)[1].split()[0]
                self.port = int(addr.rsplit(":", 1)[1])
                if "listening on https://" in line:
                    tls_addr = line.split("listening on https://", 1)[1].split()[0]
                    self.tls_port = int(tls_addr.rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError(f"server exited with {self.proc.wait()} before ready")
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, key="AKIDEXAMPLE", secret="secret", region="us-east-1", service="kinesisvideo"):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(parameter_validation=False, retries={"max_attempts": 0}),
        )

    def raw(self, path, body, key="AKIDEXAMPLE", secret="secret", region="us-east-1", service="kinesisvideo",
            sign=True, headers=None, skew_seconds=0, drop_headers=()):
        """POST `body` to `path`, SigV4-signed by botocore (optionally as if `skew_seconds` away
        from now), then optionally drop headers after signing."""
        data = body.encode() if isinstance(body, str) else body
        req = AWSRequest(method="POST", url=self.url + path, data=data,
                         headers={"Content-Type": "application/json", **(headers or {})})
        if sign:
            auth = SigV4Auth(Credentials(key, secret), service, region)
            when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(
                seconds=skew_seconds)
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                auth.add_auth(req)
        hdrs = {k: v for k, v in req.headers.items() if k.lower() not in {d.lower() for d in drop_headers}}
        return requests.post(self.url + path, data=data, headers=hdrs, timeout=10)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kv(server):
    return server.client()


@pytest.fixture
def name():
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="kvs-py-") as d:
        yield Path(d)


def error_code(exc):
    return exc.response["Error"]["Code"]


def status(exc):
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def model(name):
    return json.loads((MODELS / name).read_text())
