"""The binary's CLI contract (docs/design.md §2, behaviour.md 'CLI'): the ready line, GET /health,
graceful SIGTERM, open mode refusing a non-loopback listen address unless forced, bad flags."""
import re
import signal
import subprocess
import threading

import pytest
import requests

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from kvs_harness import Server, ServerStartError, assert_client_error, binary, wait_until


def run_expecting_exit(args, timeout=20):
    """Run the binary; it must exit by itself. Returns (code, stdout, stderr)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"{args} kept running (it should have refused to start); stdout={out!r}")
    return p.returncode, out, err


def test_ready_line_and_health():
    with Server() as s:
        assert re.search(r"listening on http://127\.0\.0\.1:\d+", s.ready_line), s.ready_line
        assert s.port != 0
        r = requests.get(s.url + "/health", timeout=5)
        assert r.status_code == 200


def test_sigterm_is_a_graceful_exit_0():
    s = Server()
    requests.get(s.url + "/health", timeout=5)
    # stop() bounds the wait (SHUTDOWN_BOUND) only to catch a hang; how fast is the benchmark's.
    assert s.stop(signal.SIGTERM) == 0


def test_sigterm_right_after_the_ready_line_is_graceful(tmp_path):
    """The ready line promises a server that handles SIGTERM: one sent at once (an orchestrator
    stopping what it just started) is a graceful exit 0, not a death by the signal (-15)."""
    codes = []
    for i in range(10):
        s = Server(data_dir=tmp_path / str(i)) if i % 2 else Server()
        codes.append(s.stop(signal.SIGTERM, expect_code=None))
    assert codes == [0] * 10, f"exit codes of 10 servers sent SIGTERM right after their ready line: {codes}"


def test_sigterm_with_sqlite_store_exit_0(tmp_path):
    s = Server(data_dir=tmp_path)
    s.client().create_signaling_channel(ChannelName="x")
    assert s.stop(signal.SIGTERM) == 0


# What a client may see from a server that is shutting down: the connection refused or closed
# (the request never got an answer). Anything else, an AWS error included, is a failure.
CONNECTION_GONE = (EndpointConnectionError, ConnectionClosedError)


def test_sigterm_during_load_exits_0_and_keeps_every_acknowledged_create(tmp_path):
    s = Server(data_dir=tmp_path)
    kv = s.client()
    acked = [[] for _ in range(4)]
    unexpected, ended = [], []
    stop = threading.Event()

    def load(w):
        i = 0
        while not stop.is_set():
            name = f"load-{w}-{i}"
            try:
                kv.create_signaling_channel(ChannelName=name)
            except CONNECTION_GONE as e:  # the listener is closed: the one expected way to end
                ended.append((w, type(e).__name__))
                return
            except Exception as e:  # noqa: BLE001  anything else is reported below
                unexpected.append(f"worker {w}, {name}: {type(e).__name__}: {e}")
                return
            acked[w].append(name)
            i += 1

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    # SIGTERM once every worker has had creates acknowledged (the event, not a fixed sleep).
    wait_until(lambda: all(len(a) >= 5 for a in acked) or unexpected, 60, what="the load to get going")
    assert not unexpected, unexpected
    assert s.stop(signal.SIGTERM) == 0
    for t in threads:
        t.join(30)
    stop.set()
    assert not any(t.is_alive() for t in threads), "a load worker hung after the server exited"
    assert not unexpected, unexpected
    assert sorted(w for w, _ in ended) == [0, 1, 2, 3], ended
    # Graceful: every create that was acknowledged before the exit is on disk.
    with Server(data_dir=tmp_path) as s2:
        names = {c["ChannelName"] for c in
                 s2.client().list_signaling_channels(MaxResults=10000)["ChannelInfoList"]}
    lost = [n for a in acked for n in a if n not in names]
    assert not lost, f"{len(lost)} acknowledged creates lost by a graceful shutdown: {lost[:10]}"


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_open_mode_refuses_non_loopback(listen):
    code, out, err = run_expecting_exit([binary(), "serve", "--listen", listen, "--store", "memory"])
    assert code != 0
    assert "listening on" not in out
    text = (out + err).lower()
    assert "loopback" in text and "--allow-open-non-loopback" in text, err


def test_open_mode_non_loopback_when_forced():
    with Server("--allow-open-non-loopback", listen="0.0.0.0:0") as s:
        assert requests.get(s.url + "/health", timeout=5).status_code == 200
        s.client().create_signaling_channel(ChannelName="forced")


def test_open_mode_non_loopback_forced_by_env():
    with Server(listen="0.0.0.0:0", env={"KVS_ALLOW_OPEN_NON_LOOPBACK": "true"}) as s:
        assert requests.get(s.url + "/health", timeout=5).status_code == 200


def test_credentials_mode_may_listen_non_loopback(tmp_path):
    creds = tmp_path / "c.toml"
    creds.write_text('[[credentials]]\naccess_key_id = "AK"\nsecret_access_key = "s"\naccount_id = "111122223333"\n')
    with Server("--credentials", str(creds), listen="0.0.0.0:0") as s:
        assert s.client(key="AK", secret="s").list_signaling_channels()["ChannelInfoList"] == []


@pytest.mark.parametrize("args", [
    ["--credentials", "/nonexistent/credentials.toml"],
    ["--lifecycle-delay", "soon"],
    ["--max-channels", "-1"],
    ["--store", "floppy"],
])
def test_bad_configuration_fails_to_start(args):
    store = [] if "--store" in args else ["--store", "memory"]
    code, out, err = run_expecting_exit([binary(), "serve", "--listen", "127.0.0.1:0", *store, *args])
    assert code != 0
    assert "listening on" not in out
    assert err.strip(), "a refusal should say why"


def test_malformed_credentials_file_fails_to_start(tmp_path):
    creds = tmp_path / "bad.toml"
    creds.write_text("[[credentials]]\naccess_key_id = \n")
    code, out, err = run_expecting_exit([binary(), "serve", "--listen", "127.0.0.1:0", "--store", "memory",
                                         "--credentials", str(creds)])
    assert code != 0 and "listening on" not in out


def test_env_configuration(tmp_path):
    with Server(env={"KVS_MAX_CHANNELS": "1", "KVS_ACCOUNT_ID": "999988887777"}) as s:
        kv = s.client()
        assert ":999988887777:" in kv.create_signaling_channel(ChannelName="one")["ChannelARN"]
        from botocore.exceptions import ClientError
        with pytest.raises(ClientError) as e:
            kv.create_signaling_channel(ChannelName="two")
        assert_client_error(e.value, "AccountChannelLimitExceededException", 400)


def test_server_start_error_is_reported():
    with pytest.raises(ServerStartError):
        Server("--no-such-flag")
