"""TURN with several nodes (docs/turn.md "What GetIceServerConfig returns"): each node hands out
URIs that reach its own relay (its host and ports, TURN over TLS included), and credentials issued
by one node allocate on every node's relay, over UDP and over TLS (one shared secret)."""
from cluster_harness import lease_args
from test_turn import REALM, SECRET, TurnUdp
from test_turn_tls import TurnStream, assert_allocated, ca_context, ice, relay_ports


def start_relay_node(spawn, redis, tmp_path, tag, name):
    n = spawn("--turn-secret", SECRET, "--turn-listen", "127.0.0.1:0", "--turn-tls-listen", "127.0.0.1:0",
              *lease_args(), data_dir=tmp_path / tag, store=redis.url)
    n.ports = relay_ports(n, f"{name}-{tag}")
    return n


def test_each_node_hands_out_its_own_relay_and_credentials_work_on_every_relay(spawn, redis, tmp_path, name):
    a = start_relay_node(spawn, redis, tmp_path, "a", name)
    b = start_relay_node(spawn, redis, tmp_path, "b", name)
    arn = a.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert len({a.ports["turn"], a.ports["tls"], b.ports["turn"], b.ports["tls"]}) == 4
    for node in (a, b):
        p = node.ports
        assert [x["Uris"] for x in ice(node, arn)] == [[
            f"turn:127.0.0.1:{p['turn']}?transport=udp",
            f"turns:127.0.0.1:{p['tls']}?transport=tcp",
            f"turn:127.0.0.1:{p['turn']}?transport=tcp",
        ]]
    # Issued by A, used on B's relay (and A's), over UDP and TLS.
    server = ice(a, arn, "viewer-a")[0]
    for node in (b, a):
        for make in (lambda: TurnUdp(node.ports["turn"]),
                     lambda: TurnStream(node.ports["tls"], ca_context(node))):
            c = make()
            try:
                key, nonce = assert_allocated(c, server["Username"], server["Password"])
                c.release(server["Username"], REALM, nonce, key)
            finally:
                c.close()
