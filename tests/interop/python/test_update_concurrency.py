"""Optimistic concurrency of UpdateSignalingChannel / DeleteSignalingChannel: N requests with the
same CurrentVersion race; exactly one wins, the others get VersionMismatchException and change
nothing. Run against both stores, since each serialises writes its own way."""
import concurrent.futures
import threading

import pytest

from kvs_harness import Server

N = 16


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def cserver(request, tmp_path_factory):
    if request.param == "memory":
        s = Server()
    else:
        s = Server(data_dir=tmp_path_factory.mktemp("conc"), store="sqlite")
    yield s
    s.stop()


def race(server, op, bodies):
    """Send the bodies at (nearly) the same moment from N threads; return the responses."""
    barrier = threading.Barrier(len(bodies))

    def go(body):
        barrier.wait()
        return server.op(op, body)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(go, bodies))


def outcome(r):
    return "ok" if r.status_code == 200 else r.json().get("__type")


def describe(server, arn):
    r = server.op("DescribeSignalingChannel", {"ChannelARN": arn})
    assert r.status_code == 200, r.text
    return r.json()["ChannelInfo"]


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_updates_with_one_version_have_exactly_one_winner(cserver, round_):
    kv = cserver.client()
    arn = kv.create_signaling_channel(ChannelName=f"race-{round_}")["ChannelARN"]
    v = describe(cserver, arn)["Version"]
    ttls = [10 + i for i in range(N)]
    rs = race(cserver, "UpdateSignalingChannel", [
        {"ChannelARN": arn, "CurrentVersion": v, "SingleMasterConfiguration": {"MessageTtlSeconds": t}} for t in ttls])
    results = [outcome(r) for r in rs]
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "VersionMismatchException"}, results
    assert all(r.status_code == 400 for r in rs if outcome(r) != "ok")
    winner = ttls[results.index("ok")]
    info = describe(cserver, arn)
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == winner
    assert info["Version"] != v
    # The winner's new version is the only one that works next.
    v2 = info["Version"]
    rs = race(cserver, "UpdateSignalingChannel", [
        {"ChannelARN": arn, "CurrentVersion": cv, "SingleMasterConfiguration": {"MessageTtlSeconds": 99}}
        for cv in [v] * (N - 1) + [v2]])
    assert [outcome(r) for r in rs] == ["VersionMismatchException"] * (N - 1) + ["ok"]


def test_chained_updates_from_many_threads_lose_nothing(cserver):
    """Each thread retries on VersionMismatch; every accepted update is counted once and the
    number of distinct versions seen equals the number of accepted updates + 1."""
    kv = cserver.client()
    arn = kv.create_signaling_channel(ChannelName="chain")["ChannelARN"]
    accepted, versions, lock = [], set(), threading.Lock()

    def worker(w):
        c = cserver.client()
        done = 0
        while done < 5:
            info = c.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
            r = cserver.op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": info["Version"],
                                                      "SingleMasterConfiguration": {"MessageTtlSeconds": 5 + w}})
            if r.status_code == 200:
                with lock:
                    accepted.append((w, info["Version"]))
                    versions.add(info["Version"])
                done += 1
            else:
                assert outcome(r) == "VersionMismatchException", r.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert len(accepted) == 40
    # No two accepted updates started from the same version.
    assert len({v for _, v in accepted}) == 40
    final = describe(cserver, arn)
    assert final["Version"] not in versions
    assert final["SingleMasterConfiguration"]["MessageTtlSeconds"] in {5 + w for w in range(8)}


def test_concurrent_deletes_with_one_version_have_exactly_one_winner(cserver):
    kv = cserver.client()
    arn = kv.create_signaling_channel(ChannelName="race-delete")["ChannelARN"]
    v = describe(cserver, arn)["Version"]
    results = [outcome(r) for r in race(cserver, "DeleteSignalingChannel",
                                        [{"ChannelARN": arn, "CurrentVersion": v}] * N)]
    assert results.count("ok") == 1, results
    assert set(results) <= {"ok", "VersionMismatchException", "ResourceNotFoundException"}, results
    r = cserver.op("DescribeSignalingChannel", {"ChannelARN": arn})
    assert r.status_code == 404


def test_update_racing_delete(cserver):
    """An update and a delete with the same version: at most one of them happens first and the
    outcome is consistent (deleted, or updated then the delete refused)."""
    kv = cserver.client()
    for i in range(5):
        arn = kv.create_signaling_channel(ChannelName=f"ud-{i}")["ChannelARN"]
        v = describe(cserver, arn)["Version"]
        up, de = _race_two(cserver, arn, v)
        after = cserver.op("DescribeSignalingChannel", {"ChannelARN": arn})
        if outcome(de) == "ok":
            assert after.status_code == 404
            assert outcome(up) in {"VersionMismatchException", "ResourceNotFoundException"}, up.text
        else:
            assert outcome(up) == "ok" and outcome(de) == "VersionMismatchException", (up.text, de.text)
            assert after.json()["ChannelInfo"]["SingleMasterConfiguration"]["MessageTtlSeconds"] == 77


def _race_two(server, arn, v):
    barrier = threading.Barrier(2)

    def go(job):
        barrier.wait()
        return server.op(*job)

    jobs = [("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": v,
                                        "SingleMasterConfiguration": {"MessageTtlSeconds": 77}}),
            ("DeleteSignalingChannel", {"ChannelARN": arn, "CurrentVersion": v})]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(go, jobs))


def test_concurrent_creates_of_one_name_have_exactly_one_winner(cserver):
    results = [outcome(r) for r in race(cserver, "CreateSignalingChannel", [{"ChannelName": "same-name"}] * N)]
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "ResourceInUseException"}, results
