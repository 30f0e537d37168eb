"""The console's live view on a cluster (issue 14, docs/console.md): watched from any node, it
shows the connections of every node (with the node each is on) and what the nodes relay, through
the feed the nodes share on Redis; its GO_AWAY reaches every node. The nodes run open mode."""
import json
import queue
import threading
import time
from urllib.parse import quote

import pytest
import requests

from cluster_harness import Ws, b64, create

OFFER = b64({"type": "offer", "sdp": "v=0\r\n"})


class Sse:
    def __init__(self, url: str):
        self.resp = requests.get(url, stream=True, timeout=(5, 60))
        assert self.resp.status_code == 200, self.resp.text
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        kind, data = None, []
        try:
            for raw in self.resp.iter_lines(decode_unicode=True):
                if raw == "":
                    if kind is not None:
                        self.events.put((kind, json.loads("\n".join(data)) if data else None))
                    kind, data = None, []
                elif raw.startswith("event:"):
                    kind = raw[6:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].strip())
        except Exception:
            pass

    def next(self, kind: str, pred=lambda d: True, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                k, d = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue
            seen.append((k, d))
            if k == kind and pred(d):
                return d
        raise AssertionError(f"no {kind!r} event within {timeout}s; saw {seen}")

    def close(self):
        self.resp.close()


def node_id(node) -> str:
    return requests.get(node.url + "/console/api/whoami", timeout=5).json()["node"]


@pytest.mark.timeout(60)
def test_the_live_view_on_one_node_shows_every_node(nodes, name):
    a, b, c = nodes
    arn = create(c, name)
    master = Ws(a, arn)
    live = Sse(f"{c.url}/console/api/live?channel={quote(arn, safe='')}")
    viewer = None
    try:
        # The snapshot (from presence) and the roll call (from node a itself) both place the
        # master on node a.
        snap = live.next("snapshot")
        assert [(x["role"], x["node"]) for x in snap["connections"]] == [("MASTER", node_id(a))]
        rolled = live.next("connected", lambda d: d["role"] == "MASTER")
        assert rolled["node"] == node_id(a) and rolled["from"].startswith("127.0.0.1:")
        viewer = Ws(b, arn, "viewer-b")
        joined = live.next("connected", lambda d: d["clientId"] == "viewer-b")
        assert joined["node"] == node_id(b)
        viewer.send("SDP_OFFER", OFFER)
        relayed = live.next("message", lambda d: d["type"] == "SDP_OFFER")
        assert (relayed["node"], relayed["from"], relayed["to"], relayed["outcome"]) == (
            node_id(b), "viewer-b", "MASTER", "relayed")
        assert master.recv(5)["messageType"] == "SDP_OFFER"
        # GO_AWAY from node c reaches the connections on nodes a and b.
        r = requests.post(c.url + "/console/api/channel/goaway", data=json.dumps({"ChannelARN": arn}), timeout=10)
        assert r.status_code == 200, r.text
        assert master.recv(5)["messageType"] == "GO_AWAY"
        assert viewer.recv(5)["messageType"] == "GO_AWAY"
    finally:
        live.close()
        for w in (master, viewer):
            if w is not None:
                w.close()
