"""The control plane on three nodes sharing one Redis (issue 8, item 1): any node answers for any
channel, never from a stale copy after another node's acknowledged write; create-if-absent, the
CurrentVersion compare-and-swap and the account channel limit are atomic across nodes; a
NextToken from one node works on another."""
import concurrent.futures
import uuid

import pytest

from cluster_harness import create, describe, outcome, race, wait_until

N = 24  # racing requests, spread round-robin over the three nodes


@pytest.mark.timeout(60)
def test_channels_created_on_one_node_are_visible_from_the_others(nodes, name):
    a, b, c = nodes
    arn = create(a, name, ttl=42)
    for n in (b, c):
        info = describe(n, arn)
        assert info["ChannelName"] == name and info["ChannelStatus"] == "ACTIVE", info
        assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 42, info
        r = n.op("DescribeSignalingChannel", {"ChannelName": name})
        assert r.status_code == 200 and r.json()["ChannelInfo"]["ChannelARN"] == arn, r.text
    listed = c.op("ListSignalingChannels", {"ChannelNameCondition": {
        "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}})
    assert [i["ChannelARN"] for i in listed.json()["ChannelInfoList"]] == [arn], listed.text
    # The same name again on another node is taken.
    r = b.op("CreateSignalingChannel", {"ChannelName": name})
    assert outcome(r) == "ResourceInUseException", r.text
    # GetSignalingChannelEndpoint on B names B (the node the client reached).
    r = b.op("GetSignalingChannelEndpoint", {"ChannelARN": arn, "SingleMasterChannelEndpointConfiguration": {
        "Protocols": ["WSS", "HTTPS"], "Role": "VIEWER"}})
    assert r.status_code == 200, r.text
    assert all(f":{b.port}" in e["ResourceEndpoint"] for e in r.json()["ResourceEndpointList"]), r.text


@pytest.mark.timeout(60)
def test_no_node_answers_from_a_stale_copy(nodes, name):
    """Each acknowledged write on one node is what the next read on another node sees: updates,
    tags and the delete (issue 8: 'a node never answers from a stale copy')."""
    arn = create(nodes[0], name, ttl=60)
    for i in range(12):
        writer, reader = nodes[i % 3], nodes[(i + 1) % 3]
        before = describe(reader, arn)  # the reader has the channel in whatever cache it keeps
        r = writer.op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": before["Version"],
                                                 "SingleMasterConfiguration": {"MessageTtlSeconds": 10 + i}})
        assert r.status_code == 200, r.text
        after = describe(reader, arn)
        assert after["SingleMasterConfiguration"]["MessageTtlSeconds"] == 10 + i, (i, after)
        assert after["Version"] != before["Version"], (i, before, after)
    r = nodes[1].op("TagResource", {"ResourceARN": arn, "Tags": [{"Key": "team", "Value": "cams"}]})
    assert r.status_code == 200, r.text
    for n in (nodes[2], nodes[0]):
        r = n.op("ListTagsForResource", {"ResourceARN": arn})
        assert r.status_code == 200 and r.json()["Tags"] == {"team": "cams"}, r.text
    r = nodes[0].op("UntagResource", {"ResourceARN": arn, "TagKeyList": ["team"]})
    assert r.status_code == 200, r.text
    assert nodes[1].op("ListTagsForResource", {"ResourceARN": arn}).json()["Tags"] == {}
    assert nodes[2].op("DeleteSignalingChannel", {"ChannelARN": arn}).status_code == 200
    for n in nodes:
        r = n.op("DescribeSignalingChannel", {"ChannelARN": arn})
        assert outcome(r) == "ResourceNotFoundException", (n.url, r.text)
    # The name is free again everywhere.
    assert nodes[1].op("CreateSignalingChannel", {"ChannelName": name}).status_code == 200


@pytest.mark.timeout(90)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_updates_across_nodes_have_exactly_one_winner(nodes, name, round_):
    arn = create(nodes[0], name)
    v = describe(nodes[1], arn)["Version"]
    ttls = [10 + i for i in range(N)]
    rs = race([(nodes[i % 3], "UpdateSignalingChannel",
                {"ChannelARN": arn, "CurrentVersion": v, "SingleMasterConfiguration": {"MessageTtlSeconds": t}})
               for i, t in enumerate(ttls)])
    results = [outcome(r) for r in rs]
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "VersionMismatchException"}, results
    assert all(r.status_code == 400 for r in rs if outcome(r) != "ok")
    winner = ttls[results.index("ok")]
    for n in nodes:
        info = describe(n, arn)
        assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == winner, (n.url, info)
        assert info["Version"] != v
    # Only the winner's new version works next, whichever node it is sent to.
    v2 = describe(nodes[2], arn)["Version"]
    rs = race([(nodes[i % 3], "UpdateSignalingChannel",
                {"ChannelARN": arn, "CurrentVersion": cv, "SingleMasterConfiguration": {"MessageTtlSeconds": 99}})
               for i, cv in enumerate([v] * (N - 1) + [v2])])
    assert [outcome(r) for r in rs] == ["VersionMismatchException"] * (N - 1) + ["ok"]


@pytest.mark.timeout(60)
def test_concurrent_creates_and_deletes_across_nodes_have_exactly_one_winner(nodes, name):
    results = [outcome(r) for r in race([(nodes[i % 3], "CreateSignalingChannel", {"ChannelName": name})
                                          for i in range(N)])]
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "ResourceInUseException"}, results
    arn = nodes[0].op("DescribeSignalingChannel", {"ChannelName": name}).json()["ChannelInfo"]["ChannelARN"]
    v = describe(nodes[2], arn)["Version"]
    results = [outcome(r) for r in race([(nodes[i % 3], "DeleteSignalingChannel",
                                           {"ChannelARN": arn, "CurrentVersion": v}) for i in range(N)])]
    assert results.count("ok") == 1, results
    assert set(results) <= {"ok", "VersionMismatchException", "ResourceNotFoundException"}, results
    for n in nodes:
        assert outcome(n.op("DescribeSignalingChannel", {"ChannelARN": arn})) == "ResourceNotFoundException"


@pytest.mark.timeout(90)
def test_the_account_channel_limit_holds_across_nodes(make_node):
    """Three nodes of another account with --max-channels 10; 30 creates of distinct names race
    over them: exactly 10 win."""
    account = "1" + uuid.uuid4().int.__str__()[:11]
    trio = [make_node("--account-id", account, "--max-channels", "10") for _ in range(3)]
    results = [outcome(r) for r in race([(trio[i % 3], "CreateSignalingChannel", {"ChannelName": f"lim-{i}"})
                                          for i in range(30)])]
    assert results.count("ok") == 10, results
    assert set(results) == {"ok", "AccountChannelLimitExceededException"}, results
    listed = trio[1].op("ListSignalingChannels", {}).json()["ChannelInfoList"]
    assert len(listed) == 10, listed
    # Deleting one on C frees a place for a create on B.
    assert trio[2].op("DeleteSignalingChannel", {"ChannelARN": listed[0]["ChannelARN"]}).status_code == 200
    assert trio[1].op("CreateSignalingChannel", {"ChannelName": "lim-again"}).status_code == 200
    assert outcome(trio[0].op("CreateSignalingChannel", {"ChannelName": "lim-over"})) == \
        "AccountChannelLimitExceededException"


def _create_many(nodes, names):
    def one(i_name):
        i, n = i_name
        r = nodes[i % 3].op("CreateSignalingChannel", {"ChannelName": n})
        assert r.status_code == 200, r.text

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        list(pool.map(one, enumerate(names)))


@pytest.mark.timeout(90)
def test_pagination_with_tokens_passed_between_nodes(nodes, name):
    prefix = name + "-"
    names = [f"{prefix}{i:03d}" for i in range(60)]
    _create_many(nodes, names)
    # Decoys around the prefix that must not show up.
    _create_many(nodes, [name[:-1] + "-zz", name + "x"])
    seen, token, page_no = [], None, 0
    while True:
        body = {"MaxResults": 7, "ChannelNameCondition": {"ComparisonOperator": "BEGINS_WITH",
                                                          "ComparisonValue": prefix}}
        if token:
            body["NextToken"] = token
        r = nodes[page_no % 3].op("ListSignalingChannels", body)
        assert r.status_code == 200, (page_no, r.text)
        out = r.json()
        page = [c["ChannelName"] for c in out["ChannelInfoList"]]
        assert len(page) <= 7, page
        seen += page
        token = out.get("NextToken")
        if not token:
            break
        assert page, "an empty page must not carry a NextToken"
        page_no += 1
        assert page_no < 50, "pagination does not end"
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert seen == sorted(names), seen
    assert page_no + 1 >= 60 // 7


# The lifecycle delay of the test below. Every check made while a channel is in a transition
# state runs right after the request that started it, so it must only be long against the time
# one or two requests take on a busy machine; the ends of the transitions are waited for (polled,
# bounded by WAIT_END), never slept through.
LIFECYCLE_DELAY = 3.0
WAIT_END = LIFECYCLE_DELAY + 10.0


def _status_everywhere(trio, arn, status):
    """True once every node answers `status` for the channel ("gone": 404)."""
    for n in trio:
        r = n.op("DescribeSignalingChannel", {"ChannelARN": arn})
        got = "gone" if outcome(r) == "ResourceNotFoundException" else r.json()["ChannelInfo"]["ChannelStatus"]
        if got != status:
            return False
    return True


@pytest.mark.timeout(90)
def test_the_lifecycle_is_the_same_on_every_node(make_node, name):
    """--lifecycle-delay on three nodes: CREATING/UPDATING/DELETING seen from every node, updates
    and deletes refused everywhere until ACTIVE, ACTIVE (or gone) everywhere once the delay has
    passed (deadlines in the record). The ends are waited for, not slept through."""
    trio = [make_node("--lifecycle-delay", f"{LIFECYCLE_DELAY:g}s") for _ in range(3)]
    arn = trio[0].op("CreateSignalingChannel", {"ChannelName": name}).json()["ChannelARN"]
    assert describe(trio[1], arn)["ChannelStatus"] == "CREATING"
    v = describe(trio[2], arn)["Version"]
    r = trio[2].op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": v,
                                              "SingleMasterConfiguration": {"MessageTtlSeconds": 30}})
    assert outcome(r) == "ResourceInUseException", r.text
    wait_until(lambda: _status_everywhere(trio, arn, "ACTIVE"), timeout=WAIT_END, what="ACTIVE on every node")
    v = describe(trio[0], arn)["Version"]
    r = trio[1].op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": v,
                                              "SingleMasterConfiguration": {"MessageTtlSeconds": 30}})
    assert r.status_code == 200, r.text
    assert describe(trio[2], arn)["ChannelStatus"] == "UPDATING"
    r = trio[0].op("DeleteSignalingChannel", {"ChannelARN": arn})
    assert outcome(r) == "ResourceInUseException", r.text
    wait_until(lambda: _status_everywhere(trio, arn, "ACTIVE"), timeout=WAIT_END,
               what="ACTIVE on every node after the update")
    info = describe(trio[0], arn)
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 30, info
    assert trio[2].op("DeleteSignalingChannel", {"ChannelARN": arn}).status_code == 200
    assert describe(trio[1], arn)["ChannelStatus"] == "DELETING"
    wait_until(lambda: _status_everywhere(trio, arn, "gone"), timeout=WAIT_END, what="the channel gone everywhere")
