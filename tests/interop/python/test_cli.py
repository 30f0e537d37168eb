"""The literal AWS CLI (`aws kinesisvideo ... --endpoint-url`, run as `python -m awscli`), with
credentials in the environment, against open mode and against --credentials."""
import json

import pytest

from kvs_harness import Server, aws_cli


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else {}


def fails(p, code):
    """The service answered with error `code`: awscli v1 exits 255 on a service error and
    its message naming exactly that code."""
    assert p.returncode == 255, (p.returncode, p.stdout, p.stderr)
    assert f"An error occurred ({code}) when calling the " in p.stderr, p.stderr


def test_round_trip(server):
    arn = ok(aws_cli(server, "create-signaling-channel", "--channel-name", "cli-chan",
                     "--single-master-configuration", "MessageTtlSeconds=30",
                     "--tags", "Key=team,Value=video"))["ChannelARN"]
    assert arn.startswith("arn:aws:kinesisvideo:us-east-1:000000000000:channel/cli-chan/")
    info = ok(aws_cli(server, "describe-signaling-channel", "--channel-name", "cli-chan"))["ChannelInfo"]
    assert info["ChannelARN"] == arn
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 30
    assert info["ChannelType"] == "SINGLE_MASTER" and info["ChannelStatus"] == "ACTIVE"
    assert ok(aws_cli(server, "describe-signaling-channel", "--channel-arn", arn))["ChannelInfo"] == info

    ok(aws_cli(server, "update-signaling-channel", "--channel-arn", arn, "--current-version", info["Version"],
               "--single-master-configuration", "MessageTtlSeconds=90"))
    new = ok(aws_cli(server, "describe-signaling-channel", "--channel-arn", arn))["ChannelInfo"]
    assert new["SingleMasterConfiguration"]["MessageTtlSeconds"] == 90 and new["Version"] != info["Version"]
    fails(aws_cli(server, "update-signaling-channel", "--channel-arn", arn, "--current-version", info["Version"],
                  "--single-master-configuration", "MessageTtlSeconds=10"), "VersionMismatchException")

    eps = ok(aws_cli(server, "get-signaling-channel-endpoint", "--channel-arn", arn,
                     "--single-master-channel-endpoint-configuration", "Protocols=WSS,HTTPS,Role=VIEWER"))
    assert {e["Protocol"]: e["ResourceEndpoint"] for e in eps["ResourceEndpointList"]} == {
        "WSS": f"ws://127.0.0.1:{server.port}", "HTTPS": f"http://127.0.0.1:{server.port}"}

    ok(aws_cli(server, "tag-resource", "--resource-arn", arn, "--tags", "Key=env,Value=test"))
    ok(aws_cli(server, "untag-resource", "--resource-arn", arn, "--tag-key-list", "team"))
    assert ok(aws_cli(server, "list-tags-for-resource", "--resource-arn", arn))["Tags"] == {"env": "test"}

    listed = ok(aws_cli(server, "list-signaling-channels", "--channel-name-condition",
                        "ComparisonOperator=BEGINS_WITH,ComparisonValue=cli-"))["ChannelInfoList"]
    assert [c["ChannelName"] for c in listed] == ["cli-chan"]

    ok(aws_cli(server, "delete-signaling-channel", "--channel-arn", arn))
    fails(aws_cli(server, "describe-signaling-channel", "--channel-arn", arn), "ResourceNotFoundException")


def test_cli_follows_next_tokens(server):
    kv = server.client()
    for i in range(7):
        kv.create_signaling_channel(ChannelName=f"clipage-{i}")
    # --page-size makes the CLI's paginator fetch 2 at a time and follow NextToken to the end.
    out = ok(aws_cli(server, "list-signaling-channels", "--page-size", "2", "--channel-name-condition",
                     "ComparisonOperator=BEGINS_WITH,ComparisonValue=clipage-"))
    assert [c["ChannelName"] for c in out["ChannelInfoList"]] == [f"clipage-{i}" for i in range(7)]
    # --max-items hands back a NextToken of the CLI's own, built on the server's.
    out = ok(aws_cli(server, "list-signaling-channels", "--page-size", "2", "--max-items", "3",
                     "--channel-name-condition", "ComparisonOperator=BEGINS_WITH,ComparisonValue=clipage-"))
    assert [c["ChannelName"] for c in out["ChannelInfoList"]] == [f"clipage-{i}" for i in range(3)]
    rest = ok(aws_cli(server, "list-signaling-channels", "--page-size", "2", "--starting-token", out["NextToken"],
                      "--channel-name-condition", "ComparisonOperator=BEGINS_WITH,ComparisonValue=clipage-"))
    assert [c["ChannelName"] for c in rest["ChannelInfoList"]] == [f"clipage-{i}" for i in range(3, 7)]


def test_cli_errors(server):
    fails(aws_cli(server, "describe-signaling-channel", "--channel-name", "no-such-channel"),
          "ResourceNotFoundException")
    ok(aws_cli(server, "create-signaling-channel", "--channel-name", "cli-dup"))
    fails(aws_cli(server, "create-signaling-channel", "--channel-name", "cli-dup"), "ResourceInUseException")
    # The CLI checks only min lengths itself; the server refuses the rest.
    fails(aws_cli(server, "create-signaling-channel", "--channel-name", "bad name"), "InvalidArgumentException")
    fails(aws_cli(server, "create-signaling-channel", "--channel-name", "x" * 257), "InvalidArgumentException")
    fails(aws_cli(server, "create-signaling-channel", "--channel-name", "cli-ttl",
                  "--single-master-configuration", "MessageTtlSeconds=1000"), "InvalidArgumentException")


CREDS = '[[credentials]]\naccess_key_id = "AKIDCLI"\nsecret_access_key = "cli-secret"\naccount_id = "444444444444"\n'


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("clicreds") / "creds.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    yield s
    s.stop()


def test_cli_with_real_credentials(secured):
    out = ok(aws_cli(secured, "create-signaling-channel", "--channel-name", "signed", key="AKIDCLI",
                     secret="cli-secret", region="eu-central-1"))
    assert out["ChannelARN"].startswith("arn:aws:kinesisvideo:eu-central-1:444444444444:channel/signed/")
    fails(aws_cli(secured, "list-signaling-channels", key="AKIDCLI", secret="wrong"), "InvalidSignatureException")
    fails(aws_cli(secured, "list-signaling-channels", key="AKIDNONE", secret="x"), "UnrecognizedClientException")
