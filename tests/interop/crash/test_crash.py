"""Crash test: several clients create and update channels, the server is killed with SIGKILL
mid-way, restarted on the same data dir, and every acknowledged write must be there."""
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from botocore.exceptions import ClientError, EndpointConnectionError  # noqa: E402

from conftest import Server  # noqa: E402

WORKERS = 6


def test_kill_9_loses_no_acknowledged_write(tmp_path):
    s = Server(data_dir=tmp_path)
    acked = {}  # name -> last acknowledged TTL (None for create only)
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w):
        kv = s.client()
        i = 0
        while not stop.is_set():
            name = f"crash-{w}-{i}"
            try:
                arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
                with lock:
                    acked[name] = (arn, 60)
                for ttl in (30, 45):
                    v = kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["Version"]
                    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v,
                                                SingleMasterConfiguration={"MessageTtlSeconds": ttl})
                    with lock:
                        acked[name] = (arn, ttl)
            except (ClientError, EndpointConnectionError, Exception):  # server gone mid-request
                return
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    time.sleep(3)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    with lock:
        snapshot = dict(acked)
    assert len(snapshot) > 10, "the load did not get going"

    s2 = Server(data_dir=tmp_path)
    try:
        kv = s2.client()
        for name, (arn, ttl) in snapshot.items():
            info = kv.describe_signaling_channel(ChannelName=name)["ChannelInfo"]
            assert info["ChannelARN"] == arn
            # The acknowledged TTL, or a later one whose ack was lost with the crash.
            got = info["SingleMasterConfiguration"]["MessageTtlSeconds"]
            assert got == ttl or (ttl, got) in {(60, 30), (30, 45)}, (name, ttl, got)
    finally:
        s2.stop()
