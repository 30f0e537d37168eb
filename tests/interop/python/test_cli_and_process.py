"""The literal AWS CLI, the CLI contract of the binary, persistence across restarts."""
import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from conftest import Server, binary


def aws(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDCLI", AWS_SECRET_ACCESS_KEY="cli-secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    out = subprocess.run([sys.executable, "-m", "awscli", "kinesisvideo", *args, "--endpoint-url", server.url,
                          "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    return out


def test_aws_cli_round_trip(server):
    out = aws(server, "create-signaling-channel", "--channel-name", "cli-chan",
              "--single-master-configuration", "MessageTtlSeconds=30")
    assert out.returncode == 0, out.stderr
    arn = json.loads(out.stdout)["ChannelARN"]
    out = aws(server, "describe-signaling-channel", "--channel-name", "cli-chan")
    info = json.loads(out.stdout)["ChannelInfo"]
    assert info["ChannelARN"] == arn and info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 30
    out = aws(server, "update-signaling-channel", "--channel-arn", arn, "--current-version", info["Version"],
              "--single-master-configuration", "MessageTtlSeconds=90")
    assert out.returncode == 0, out.stderr
    out = aws(server, "update-signaling-channel", "--channel-arn", arn, "--current-version", info["Version"])
    assert out.returncode != 0 and "VersionMismatchException" in out.stderr
    out = aws(server, "get-signaling-channel-endpoint", "--channel-arn", arn,
              "--single-master-channel-endpoint-configuration", "Protocols=WSS,HTTPS,Role=VIEWER")
    assert {e["Protocol"] for e in json.loads(out.stdout)["ResourceEndpointList"]} == {"WSS", "HTTPS"}
    out = aws(server, "list-signaling-channels")
    assert any(c["ChannelName"] == "cli-chan" for c in json.loads(out.stdout)["ChannelInfoList"])
    assert aws(server, "delete-signaling-channel", "--channel-arn", arn).returncode == 0
    out = aws(server, "describe-signaling-channel", "--channel-arn", arn)
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr


def test_health_ready_line_and_graceful_sigterm():
    s = Server()
    assert requests.get(s.url + "/health", timeout=5).status_code == 200
    assert s.stop(signal.SIGTERM) == 0


def test_open_mode_refuses_non_loopback_unless_forced():
    p = subprocess.run([binary(), "serve", "--listen", "0.0.0.0:0", "--store", "memory"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "non-loopback" in p.stderr
    s = Server("--allow-open-non-loopback")  # --listen 127.0.0.1:0 is loopback anyway; flag accepted
    s.stop()


def test_restart_keeps_every_acknowledged_write(tmpdir_path):
    s = Server(data_dir=tmpdir_path)
    kv = s.client()
    arns = [kv.create_signaling_channel(ChannelName=f"keep-{i}")["ChannelARN"] for i in range(5)]
    v = kv.describe_signaling_channel(ChannelARN=arns[0])["ChannelInfo"]["Version"]
    kv.update_signaling_channel(ChannelARN=arns[0], CurrentVersion=v,
                                SingleMasterConfiguration={"MessageTtlSeconds": 7})
    kv.tag_resource(ResourceARN=arns[1], Tags=[{"Key": "k", "Value": "v"}])
    kv.delete_signaling_channel(ChannelARN=arns[2])
    before = [kv.describe_signaling_channel(ChannelARN=a)["ChannelInfo"] for a in arns if a != arns[2]]
    assert s.stop() == 0
    s = Server(data_dir=tmpdir_path)
    kv = s.client()
    after = [kv.describe_signaling_channel(ChannelARN=a)["ChannelInfo"] for a in arns if a != arns[2]]
    assert before == after
    assert kv.list_tags_for_resource(ResourceARN=arns[1])["Tags"] == {"k": "v"}
    names = {c["ChannelName"] for c in kv.list_signaling_channels()["ChannelInfoList"]}
    assert "keep-2" not in names
    s.stop()
