"""The TLS listener: generated local CA (created once, reused), or the operator's certificate."""
import hashlib
import socket
import ssl

import boto3
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
