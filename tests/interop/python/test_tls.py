"""The TLS listener: generated local CA (created once, reused), or the operator's certificate."""
import hashlib
import shutil
import socket
import ssl
import subprocess

import boto3
import pytest
import requests

import re

from kvs_harness import Server


def tls_port(s):
    return int(re.search(r"listening on https://\S+:(\d+)", s.ready_line).group(1))


def served_cert_sha256(port, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def test_generated_ca_is_reused_and_endpoints_are_https(tmp_path):
    tmpdir_path = tmp_path
    s = Server("--tls-listen", "127.0.0.1:0", data_dir=tmpdir_path, store="memory")
    ca = tmpdir_path / "tls" / "ca.pem"
    try:
        first_ca = ca.read_text()
        base = f"https://localhost:{tls_port(s)}"
        assert requests.get(base + "/health", verify=str(ca), timeout=5).status_code == 200
        kv = boto3.client(
            "kinesisvideo", endpoint_url=base, region_name="us-east-1", verify=str(ca),
            aws_access_key_id="AKID", aws_secret_access_key="secret")
        arn = kv.create_signaling_channel(ChannelName="tls")["ChannelARN"]
        eps = kv.get_signaling_channel_endpoint(
            ChannelARN=arn, SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": "MASTER"})
        got = {e["Protocol"]: e["ResourceEndpoint"] for e in eps["ResourceEndpointList"]}
        assert got == {"WSS": f"wss://localhost:{tls_port(s)}", "HTTPS": f"https://localhost:{tls_port(s)}"}
    finally:
        s.stop()
    s = Server("--tls-listen", "127.0.0.1:0", data_dir=tmpdir_path, store="memory")
    try:
        assert ca.read_text() == first_ca, "the CA is kept across restarts"
        served_cert_sha256(tls_port(s), ca)  # verifies against the same CA
    finally:
        s.stop()


def test_operator_certificate_is_served(tmp_path):
    tmpdir_path = tmp_path
    gen = tmpdir_path / "gen"
    s = Server("--tls-listen", "127.0.0.1:0", data_dir=gen, store="memory")
    s.stop()
    cert, key, ca = gen / "tls" / "server.pem", gen / "tls" / "server-key.pem", gen / "tls" / "ca.pem"
    other = tmpdir_path / "other"
    s = Server("--tls-listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
               data_dir=other, store="memory")
    try:
        pem = cert.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
        expected = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        assert served_cert_sha256(tls_port(s), ca) == expected
        assert not (other / "tls").exists(), "no CA is generated when a certificate is given"
    finally:
        s.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    s = Server("--tls-listen", "127.0.0.1:0", data_dir=tmp_path_factory.mktemp("tls-policy"), store="memory")
    yield s
    s.stop()


# SECURITY.md "TLS": TLS 1.2 and 1.3 only, and only forward-secret AEAD suites (crates/server/src/tls.rs).
# OpenSSL's own policy would refuse TLS 1.0/1.1 before sending anything; SECLEVEL=0 lifts it, so
# the refusal seen here is the server's alert.
@pytest.mark.parametrize("case,args,ok", [
    ("TLS 1.3", ["-tls1_3"], True),
    ("TLS 1.2 ECDHE-ECDSA-AES-GCM", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], True),
    ("TLS 1.2 ECDHE-ECDSA-CHACHA20", ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"], True),
    ("TLS 1.1", ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    ("TLS 1.0", ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    ("TLS 1.2 CBC suites only", ["-tls1_2", "-cipher",
                                 "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"], False),
    ("TLS 1.2 static-RSA key exchange only", ["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384"], False),
])
def test_only_modern_tls_is_negotiated(tls_server, case, args, ok):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/test.sh installs it)")
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port(tls_server)}",
                        "-servername", "localhost", *args],
                       input=b"", capture_output=True, timeout=20)
    out = (r.stdout + r.stderr).decode(errors="replace")
    if ok:
        assert r.returncode == 0 and "Cipher is (NONE)" not in out, (case, out)
    else:
        assert r.returncode != 0 and "Cipher is (NONE)" in out, (case, out)
        assert "alert" in out, ("the server, not the client, must refuse", case, out)
