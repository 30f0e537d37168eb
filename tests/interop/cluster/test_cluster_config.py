"""The Redis store as configured by an operator (issue 8, item 1; docs/design.md §2): the URL
with a password and a database, given as the flag, as KVS_STORE and as `store = "..."` in the
TOML file, all reaching the same Redis; the password never printed; a wrong password fails
cleanly; --redis-prefix keeps two deployments on one Redis apart."""
import subprocess
import time
from pathlib import Path

import pytest
import requests

from cluster_harness import (NODE_FLAGS, RedisServer, create, describe, lease_args, outcome, redis_binary,
                             stop_quietly)
from kvs_harness import Server

PASSWORD = "s3cret-Pa55-x"


@pytest.fixture
def locked_redis(tmp_path):
    r = RedisServer(tmp_path / "redis-pw")
    # Lock it after start (the harness PINGs without a password to see it up).
    out = subprocess.run([cli_binary(), "-p", str(r.port),
                          "CONFIG", "SET", "requirepass", PASSWORD], capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or "OK" not in out.stdout:
        r.stop()
        pytest.fail(f"cannot set requirepass: {out.stdout} {out.stderr}")
    yield r
    r.stop()


INFO = {"KVS_LOG": "info", "RUST_LOG": "info"}  # startup lines name the store


def output(node) -> str:
    """Everything the node printed so far (stdout and the whole stderr log)."""
    try:
        err = Path(node._log.name).read_text(errors="replace")
    except OSError:
        err = ""
    return "".join(node.stdout_lines) + err


def cli_binary() -> str:
    """redis-cli (or valkey-cli) beside the server binary."""
    return redis_binary().replace("redis-server", "redis-cli").replace("valkey-server", "valkey-cli")


def redis_cli(redis, *args):
    cli = cli_binary()
    out = subprocess.run([cli, "-p", str(redis.port), "-a", PASSWORD, "--no-auth-warning", *args],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.split()


@pytest.mark.timeout(60)
def test_flag_env_and_toml_file_reach_the_same_redis_with_password_and_db(locked_redis, tmp_path):
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/3"
    conf = tmp_path / "kvs.toml"
    conf.write_text(f'store = "{url}"\n')
    nodes = []
    try:
        # The flag; then KVS_STORE alone; then the TOML file alone. (The harness adds no --store
        # when it is given a data dir and no store: the unused data dir proves nothing is on disk.)
        nodes.append(Server(*NODE_FLAGS, *lease_args(), store=url, env=INFO))
        nodes.append(Server(*NODE_FLAGS, *lease_args(), data_dir=tmp_path / "env-node",
                            env={**INFO, "KVS_STORE": url}))
        nodes.append(Server(*NODE_FLAGS, *lease_args(), "--config", str(conf), data_dir=tmp_path / "toml-node",
                            env=INFO))
        arn = create(nodes[0], "cfg-shared")
        for n in nodes[1:]:
            assert describe(n, arn)["ChannelName"] == "cfg-shared", n.args
        arn2 = create(nodes[2], "cfg-from-toml")
        assert describe(nodes[1], arn2)["ChannelName"] == "cfg-from-toml"
        # Database 3, not 0: the keys are where the URL says.
        keys3, keys0 = redis_cli(locked_redis, "-n", "3", "--scan"), redis_cli(locked_redis, "-n", "0", "--scan")
        assert any("cfg-shared" in k for k in keys3), keys3
        assert not any("cfg-shared" in k for k in keys0), keys0
        for d in ("env-node", "toml-node"):
            assert not any((tmp_path / d).glob("*.db*")), f"a SQLite store was created in {d}"
        for n in nodes:
            assert PASSWORD not in output(n), f"the Redis password is printed by {n.args}"
    finally:
        for n in nodes:
            stop_quietly(n)


@pytest.mark.timeout(60)
def test_a_wrong_password_is_a_clean_503_not_a_crash(locked_redis):
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{locked_redis.port}"
    n = Server(*NODE_FLAGS, *lease_args(), store=url, env=INFO)
    try:
        assert requests.get(n.url + "/ready", timeout=10).status_code != 200
        t0 = time.monotonic()
        r = n.op("CreateSignalingChannel", {"ChannelName": "never"})
        took = time.monotonic() - t0
        assert 500 <= r.status_code < 600 and "json" in r.headers.get("Content-Type", ""), (r.status_code, r.text)
        assert took < 6, took
        assert n.proc.poll() is None
        assert "wrong-" not in output(n), "the (wrong) Redis password is printed"
    finally:
        stop_quietly(n)


@pytest.mark.timeout(60)
def test_redis_prefix_keeps_two_deployments_apart(redis):
    blue = [Server(*NODE_FLAGS, *lease_args(), "--redis-prefix", "blue", store=redis.url) for _ in range(2)]
    green = Server(*NODE_FLAGS, *lease_args(), "--redis-prefix", "green", store=redis.url)
    try:
        arn = create(blue[0], "prefixed")
        assert describe(blue[1], arn)["ChannelName"] == "prefixed"
        assert outcome(green.op("DescribeSignalingChannel", {"ChannelARN": arn})) == "ResourceNotFoundException"
        assert green.op("CreateSignalingChannel", {"ChannelName": "prefixed"}).status_code == 200
        listed = green.op("ListSignalingChannels", {}).json()["ChannelInfoList"]
        assert [c["ChannelName"] for c in listed] == ["prefixed"]
        assert listed[0]["ChannelARN"] != arn
    finally:
        for n in blue + [green]:
            stop_quietly(n)
