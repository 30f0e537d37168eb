"""The deployment guide works as written (issue 12, "What must work" 8): the nginx and HAProxy
examples of docs/deployment.md, taken from the document itself (its ```nginx and ```haproxy
blocks), run with Debian's `nginx` and `haproxy` in front of three nodes on Redis started as the
guide says (`--credentials`, `--public-endpoint` the balancer's URL). Only addresses, ports and
the certificate files change: the upstream `server` lines name the three nodes, `listen 443` /
`bind :443` becomes a free loopback port, and the certificate paths point at a throw-away
self-signed certificate for 127.0.0.1. The test's own wrapper adds what a whole nginx.conf or
haproxy.cfg needs around the example (pid and log files, the `http {}` context), nothing inside it.

Through each balancer: SigV4-signed API calls with boto3 (the signature covers the Host header,
port included, so it only verifies if the balancer passes Host unchanged), presigned WebSocket
connects to the endpoint GetSignalingChannelEndpoint hands out (the signature is in the query
string), and a call relayed between two nodes behind the balancer.

nginx, haproxy and openssl are installed by the suite when missing (`cluster_harness.ensure_tool`).
"""
from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import urllib.parse
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from cluster_harness import (Ws, WsRefused, b64, ensure_tool, free_port, metric, start_node, stop_all,
                             wait_until)
from kvs_harness import ROOT, client_config, error_code, http_status

DOC = ROOT / "docs" / "deployment.md"
KEY, SECRET, ACCOUNT, REGION = "AKIDDEPLOY", "deploy-secret", "123456789012", "us-east-1"
CREDENTIALS = f"""[[credentials]]
access_key_id = "{KEY}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"
"""
OFFER = b64({"type": "offer", "sdp": "v=0\r\n"})
ANSWER = b64({"type": "answer", "sdp": "v=0\r\n"})
EXIT_BOUND = 10.0  # how long a balancer may take to exit after its stop signal


# --- the examples, from the guide ----------------------------------------------------------------
def doc_block(lang: str) -> str:
    """The one fenced ```lang block of docs/deployment.md."""
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) == 1, f"docs/deployment.md has {len(blocks)} ```{lang} blocks; this test expects one"
    return blocks[0]


def _sub_exactly(pattern: str, repl, text: str, count: int, what: str) -> str:
    out, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == count, f"the guide's example has {n} {what} (expected {count}); update this test with the doc"
    return out


def nginx_example(nodes, port: int, cert: Path, key: Path) -> str:
    block = doc_block("nginx")
    it = iter(nodes)
    block = _sub_exactly(r"^(\s*server\s+)\S+:\d+;", lambda m: f"{m.group(1)}{next(it).netloc};", block, 3,
                         "upstream server lines")
    block = _sub_exactly(r"^(\s*listen\s+)443(\s)", rf"\g<1>127.0.0.1:{port}\g<2>", block, 1, "listen 443 lines")
    block = _sub_exactly(r"^(\s*ssl_certificate\s+)\S+;", rf"\g<1>{cert};", block, 1, "ssl_certificate lines")
    block = _sub_exactly(r"^(\s*ssl_certificate_key\s+)\S+;", rf"\g<1>{key};", block, 1, "ssl_certificate_key lines")
    return block


def haproxy_example(nodes, port: int, pem: Path) -> str:
    block = doc_block("haproxy")
    it = iter(nodes)
    block = _sub_exactly(r"^(\s*server\s+\S+\s+)\S+:\d+", lambda m: f"{m.group(1)}{next(it).netloc}", block, 3,
                         "backend server lines")
    block = _sub_exactly(r"^(\s*bind\s+):443(\s+ssl\s+crt\s+)\S+", rf"\g<1>127.0.0.1:{port}\g<2>{pem}", block, 1,
                         "bind :443 ssl crt lines")
    return block


# --- processes -----------------------------------------------------------------------------------
def self_signed(dir: Path) -> tuple[Path, Path]:
    openssl = ensure_tool("/usr/bin/openssl", "openssl")
    cert, key = dir / "signaling.pem", dir / "signaling.key"
    out = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                          "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                          "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return cert, key


class Balancer:
    """nginx or haproxy in the foreground; `stop()` checks its exit (code 0 within EXIT_BOUND)."""

    def __init__(self, kind: str, dir: Path, nodes, port: int, cert: Path, key: Path):
        self.kind, self.dir, self.port = kind, dir, port
        self.log_path = dir / f"{kind}.log"
        if kind == "nginx":
            exe = ensure_tool("/usr/sbin/nginx", "nginx")
            conf = dir / "nginx.conf"
            user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
            temp = "".join(f"    {k}_temp_path {dir}/{k}-temp;\n" for k in ("client_body", "proxy", "fastcgi",
                                                                           "uwsgi", "scgi"))
            conf.write_text(f"{user}daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\n"
                            f"error_log {self.log_path} info;\nevents {{ worker_connections 256; }}\n"
                            f"http {{\n    access_log {dir}/access.log;\n{temp}"
                            "    # --- docs/deployment.md, nginx example (addresses, ports, certificate paths changed)\n"
                            f"{nginx_example(nodes, port, cert, key)}}}\n")
            base = [exe, "-p", str(dir), "-c", str(conf), "-e", str(self.log_path)]
            check, run = base + ["-t"], base
            self.stop_signal = signal.SIGQUIT  # graceful shutdown
        else:
            exe = ensure_tool("/usr/sbin/haproxy", "haproxy")
            pem = dir / "haproxy.pem"  # HAProxy's crt: certificate and key in one file
            pem.write_text(cert.read_text() + key.read_text())
            conf = dir / "haproxy.cfg"
            conf.write_text("global\n    log stderr format raw local0 info\n\n"
                            "# --- docs/deployment.md, HAProxy example (addresses, ports, certificate path changed)\n"
                            f"{haproxy_example(nodes, port, pem)}")
            check, run = [exe, "-c", "-f", str(conf)], [exe, "-db", "-f", str(conf)]
            self.stop_signal = signal.SIGUSR1  # soft stop
        self.conf = conf
        out = subprocess.run(check, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{kind} refuses the guide's example:\n{conf.read_text()}\n{out.stdout}{out.stderr}"
        self.log = open(self.log_path.with_suffix(".out"), "w")
        self.proc = subprocess.Popen(run, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"https://127.0.0.1:{port}"
        self.ssl = ssl.create_default_context(cafile=str(cert))
        self.cafile = str(cert)

        def up():
            assert self.proc.poll() is None, f"{kind} exited with {self.proc.returncode}:\n{self.output()}"
            try:
                import requests
                return requests.get(self.url + "/ready", timeout=2, verify=self.cafile).status_code == 200
            except Exception:
                return False

        wait_until(up, timeout=20, interval=0.2, what=f"{kind} to serve /ready on :{port}")

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in
                         (self.log_path, self.log_path.with_suffix(".out")) if p.exists())

    def stop(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.kind} had exited by itself with {self.proc.returncode}:\n{self.output()}")
        self.proc.send_signal(self.stop_signal)
        try:
            rc = self.proc.wait(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.kind} did not exit within {EXIT_BOUND}s of {self.stop_signal.name}") from None
        finally:
            self.log.close()
        assert rc == 0, f"{self.kind} exited with {rc}:\n{self.output()}"


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def deployment(request, redis, tmp_path_factory):
    """Three nodes as the guide runs them, behind the guide's `request.param` example."""
    dir = tmp_path_factory.mktemp(f"deploy-{request.param}")
    creds = dir / "credentials.toml"
    creds.write_text(CREDENTIALS)
    cert, key = self_signed(dir)
    port = free_port()
    nodes, balancer = [], None
    try:
        for _ in range(3):
            nodes.append(start_node(redis, "--credentials", str(creds), "--public-endpoint",
                                    f"https://127.0.0.1:{port}", "--redis-prefix", f"deploy-{request.param}",
                                    max_viewers=10))
        balancer = Balancer(request.param, dir, nodes, port, cert, key)
        yield balancer, nodes
    finally:
        errors = []
        if balancer:
            try:
                balancer.stop()
            except AssertionError as e:
                errors.append(str(e))
        try:
            stop_all(nodes)
        except AssertionError as e:
            errors.append(str(e))
        assert not errors, "\n\n".join(errors)


def kv(balancer: Balancer, secret: str = SECRET, service: str = "kinesisvideo"):
    """A boto3 client whose endpoint is the balancer (as an application configures it)."""
    return boto3.session.Session().client(service, endpoint_url=balancer.url, region_name=REGION,
                                          aws_access_key_id=KEY, aws_secret_access_key=secret,
                                          verify=balancer.cafile, config=client_config())


def presign(endpoint: str, arn: str, client_id: str | None, secret: str = SECRET) -> str:
    """A presigned ConnectAsMaster/ConnectAsViewer URL for a wss:// endpoint, signed as the SDKs
    sign it (SigV4 query auth over https://HOST/, service kinesisvideo)."""
    https = "https://" + endpoint.split("://", 1)[1].rstrip("/") + "/"
    params = {"X-Amz-ChannelARN": arn}
    if client_id is not None:
        params["X-Amz-ClientId"] = client_id
    req = AWSRequest(method="GET", url=f"{https}?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}")
    SigV4QueryAuth(Credentials(KEY, secret), "kinesisvideo", REGION, expires=299).add_auth(req)
    return "wss://" + req.url.split("://", 1)[1]


def endpoints(client, arn: str, role: str) -> dict:
    out = client.get_signaling_channel_endpoint(ChannelARN=arn, SingleMasterChannelEndpointConfiguration={
        "Protocols": ["WSS", "HTTPS"], "Role": role})
    return {e["Protocol"]: e["ResourceEndpoint"] for e in out["ResourceEndpointList"]}


def on_node(nodes, gauge: str) -> list[int]:
    return [int(metric(n, gauge)) for n in nodes]


# --- the checks ----------------------------------------------------------------------------------
@pytest.mark.timeout(90)
def test_signed_api_calls_through_the_balancer(deployment, name):
    balancer, nodes = deployment
    c = kv(balancer)
    arn = c.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert f":{ACCOUNT}:channel/{name}/" in arn, arn
    # Several calls in a row: the balancer spreads them over the three nodes, and each node
    # verifies the signature made for the balancer's Host.
    for _ in range(6):
        info = c.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
        assert info["ChannelName"] == name and info["ChannelStatus"] == "ACTIVE", info
    c.update_signaling_channel(ChannelARN=arn, CurrentVersion=info["Version"],
                               SingleMasterConfiguration={"MessageTtlSeconds": 30})
    c.tag_resource(ResourceARN=arn, Tags=[{"Key": "via", "Value": balancer.kind}])
    assert c.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"via": balancer.kind}
    listed = c.list_signaling_channels(ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                             "ComparisonValue": name})["ChannelInfoList"]
    assert [i["ChannelARN"] for i in listed] == [arn], listed
    # --public-endpoint: clients are sent back to the balancer, not to the node that answered.
    for role in ("MASTER", "VIEWER"):
        assert endpoints(c, arn, role) == {"WSS": f"wss://127.0.0.1:{balancer.port}",
                                           "HTTPS": f"https://127.0.0.1:{balancer.port}"}
    # The nodes do verify: a wrong secret is refused through the balancer too.
    with pytest.raises(ClientError) as refused:
        kv(balancer, secret="not-the-secret").describe_signaling_channel(ChannelARN=arn)
    assert (error_code(refused.value), http_status(refused.value)) == ("InvalidSignatureException", 403)
    c.delete_signaling_channel(ChannelARN=arn)


@pytest.mark.timeout(90)
def test_presigned_websockets_and_a_relay_across_nodes_through_the_balancer(deployment, name):
    balancer, nodes = deployment
    c = kv(balancer)
    arn = c.create_signaling_channel(ChannelName=name)["ChannelARN"]
    wss = endpoints(c, arn, "MASTER")["WSS"]
    # A presigned URL with a wrong signature is refused at the handshake (403), through the balancer.
    with pytest.raises(WsRefused) as refused:
        Ws(None, arn, None, url=presign(wss, arn, None, secret="not-the-secret"), ssl=balancer.ssl).close()
    assert refused.value.status == 403 and refused.value.json()["__type"] == "InvalidSignatureException", \
        refused.value
    masters_before = on_node(nodes, "kvs_signaling_masters_connected")
    master = Ws(None, arn, None, url=presign(wss, arn, None), ssl=balancer.ssl)
    viewers = []
    try:
        # Which node the balancer put the master on (the nodes' gauges), then viewers until one
        # lands on another node: the call below is relayed between two nodes.
        moved = [a - b for a, b in zip(on_node(nodes, "kvs_signaling_masters_connected"), masters_before)]
        assert sorted(moved) == [0, 0, 1], moved
        master_node = moved.index(1)
        viewer_wss = endpoints(c, arn, "VIEWER")["WSS"]
        remote = None
        for i in range(6):
            before = on_node(nodes, "kvs_signaling_viewers_connected")
            v = Ws(None, arn, f"viewer-{i}", url=presign(viewer_wss, arn, f"viewer-{i}"), ssl=balancer.ssl)
            viewers.append(v)
            after = on_node(nodes, "kvs_signaling_viewers_connected")
            landed = [a - b for a, b in zip(after, before)]
            assert sorted(landed) == [0, 0, 1], landed
            if landed.index(1) != master_node:
                remote = v
                break
        assert remote is not None, f"{balancer.kind} put {len(viewers)} viewers on the master's node"
        remote.send("SDP_OFFER", OFFER)
        got = master.recv(5)
        assert got["messageType"] == "SDP_OFFER" and got["senderClientId"] == remote.client_id, got
        master.send("SDP_ANSWER", ANSWER, recipient=remote.client_id)
        got = remote.recv(5)
        assert got["messageType"] == "SDP_ANSWER" and got["messagePayload"] == ANSWER, got
        for i in range(3):
            remote.send("ICE_CANDIDATE", b64(f"v-{i}"))
            master.send("ICE_CANDIDATE", b64(f"m-{i}"), recipient=remote.client_id)
        for i in range(3):
            assert master.recv(5)["messagePayload"] == b64(f"v-{i}")
            assert remote.recv(5)["messagePayload"] == b64(f"m-{i}")
        # Every viewer, wherever it landed, reaches the master.
        for v in viewers:
            v.send("ICE_CANDIDATE", b64(f"from-{v.client_id}"))
            got = master.recv(5)
            assert got["senderClientId"] == v.client_id, got
    finally:
        for w in viewers + [master]:
            w.close()
    c.delete_signaling_channel(ChannelARN=arn)
