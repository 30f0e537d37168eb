"""kill -9 crash test for the SQLite store (docs/design.md §2 'Storage': durable for every
acknowledged write).

Several client threads create, update and delete channels on a server with a --data-dir. Every
request is written to the thread's ledger *before* it is sent (as pending) and again when it is
acknowledged. The server is killed with SIGKILL mid-load, restarted on the same data dir, and:

- every acknowledged create exists with its ARN, unless a delete of it was in flight;
- every channel's TTL is its last acknowledged one, or the one of the update that was in flight
  when the server died (each channel has one owner thread, so nothing else can supersede it);
- every acknowledged delete is gone;
- a create that was in flight either exists with the requested TTL or does not exist;
- nothing exists that no thread asked for.

Runs several kill/restart rounds, each new round on top of the previous rounds' data.
Usage: python crash_test.py [--data-dir DIR] [--rounds N] [--seconds S] [--workers W]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from botocore.exceptions import ClientError  # noqa: E402

from kvs_harness import Server  # noqa: E402


@dataclass
class Entry:
    name: str
    create_ttl: int
    arn: str | None = None  # set once the create is acknowledged
    acked_ttl: int | None = None
    pending_ttl: int | None = None  # an update in flight when the server died
    deleted: bool = False
    delete_pending: bool = False
    version: str | None = None


@dataclass
class Stats:
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    errors: list = field(default_factory=list)


def worker(server: Server, prefix: str, ledger: dict, mine: list, stats: Stats, stop: threading.Event, seed: int):
    rng = random.Random(seed)
    kv = server.client()
    i = 0
    while not stop.is_set():
        live = [e for e in mine if e.arn and not e.deleted]
        roll = rng.random()
        try:
            if not live or roll < 0.4:
                e = Entry(f"{prefix}-{i}", rng.randint(5, 120))
                i += 1
                ledger[e.name] = e
                mine.append(e)
                arn = kv.create_signaling_channel(ChannelName=e.name,
                                                  SingleMasterConfiguration={"MessageTtlSeconds": e.create_ttl}
                                                  )["ChannelARN"]
                e.arn, e.acked_ttl = arn, e.create_ttl
                stats.creates += 1
            elif roll < 0.93:
                e = rng.choice(live)
                if e.version is None:
                    e.version = kv.describe_signaling_channel(ChannelARN=e.arn)["ChannelInfo"]["Version"]
                ttl = rng.randint(5, 120)
                e.pending_ttl = ttl
                kv.update_signaling_channel(ChannelARN=e.arn, CurrentVersion=e.version,
                                            SingleMasterConfiguration={"MessageTtlSeconds": ttl})
                e.acked_ttl, e.pending_ttl = ttl, None
                e.version = None  # rotated; read it again before the next update
                stats.updates += 1
            else:
                e = rng.choice(live)
                e.delete_pending = True
                kv.delete_signaling_channel(ChannelARN=e.arn)
                e.deleted, e.delete_pending = True, False
                stats.deletes += 1
        except ClientError as exc:
            # An AWS error is an answer, not a crash: it means the request did not happen.
            stats.errors.append(f"{exc.response['Error']['Code']}: {exc}")
            return
        except Exception:  # noqa: BLE001  the connection died with the server: outcome unknown
            return


def verify(server: Server, ledger: dict) -> list[str]:
    """Compare the restarted server with the ledger; return the problems found."""
    kv = server.client()
    listed, token = {}, None
    while True:
        kw = {"MaxResults": 10000}
        if token:
            kw["NextToken"] = token
        out = kv.list_signaling_channels(**kw)
        for c in out["ChannelInfoList"]:
            listed[c["ChannelName"]] = c
        token = out.get("NextToken")
        if not token:
            break
    problems = []
    for name, e in ledger.items():
        got = listed.get(name)
        if e.arn is None:  # the create was in flight
            if got is not None and got["SingleMasterConfiguration"]["MessageTtlSeconds"] != e.create_ttl:
                problems.append(f"{name}: in-flight create has TTL {got['SingleMasterConfiguration']}")
            if got is not None:  # it happened: adopt it so later rounds account for it
                e.arn, e.acked_ttl = got["ChannelARN"], e.create_ttl
            continue
        if e.deleted:
            if got is not None:
                problems.append(f"{name}: acknowledged delete, but the channel is back")
            continue
        if got is None:
            if e.delete_pending:
                e.deleted, e.delete_pending = True, False
                continue
            problems.append(f"{name}: acknowledged create lost")
            continue
        if e.delete_pending:
            e.delete_pending = False  # it did not happen
        if got["ChannelARN"] != e.arn:
            problems.append(f"{name}: ARN {got['ChannelARN']} != acknowledged {e.arn}")
        ttl = got["SingleMasterConfiguration"]["MessageTtlSeconds"]
        allowed = {e.acked_ttl} | ({e.pending_ttl} if e.pending_ttl is not None else set())
        if ttl not in allowed:
            problems.append(f"{name}: TTL {ttl}, acknowledged {e.acked_ttl}, in flight {e.pending_ttl}")
        e.acked_ttl, e.pending_ttl, e.version = ttl, None, None
        if got["ChannelStatus"] != "ACTIVE":
            problems.append(f"{name}: status {got['ChannelStatus']} with --lifecycle-delay 0s")
    for name in listed:
        if name not in ledger:
            problems.append(f"{name}: exists, but nobody created it")
    return problems


def run(data_dir: Path, rounds: int = 3, seconds: float = 2.5, workers: int = 6, seed: int = 1,
        log=print) -> dict:
    ledger: dict[str, Entry] = {}
    totals = Stats()
    server = Server(data_dir=data_dir)
    try:
        for r in range(rounds):
            stop = threading.Event()
            stats = [Stats() for _ in range(workers)]
            threads = [threading.Thread(target=worker, args=(server, f"crash-r{r}-w{w}", ledger, [], stats[w], stop,
                                                             seed * 1000 + r * 100 + w), daemon=True)
                       for w in range(workers)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            server.kill()  # kill -9 mid-load
            stop.set()
            for t in threads:
                t.join(timeout=30)
                assert not t.is_alive(), "a client thread hung after the kill"
            round_stats = Stats(sum(s.creates for s in stats), sum(s.updates for s in stats),
                                sum(s.deletes for s in stats), [x for s in stats for x in s.errors])
            log(f"round {r}: {round_stats.creates} creates, {round_stats.updates} updates, "
                f"{round_stats.deletes} deletes acknowledged before kill -9")
            assert not round_stats.errors, round_stats.errors[:5]
            assert round_stats.creates >= 10 and round_stats.updates >= 10, "the load did not get going"
            totals.creates += round_stats.creates
            totals.updates += round_stats.updates
            totals.deletes += round_stats.deletes
            server = Server(data_dir=data_dir)
            problems = verify(server, ledger)
            assert not problems, f"round {r}: {len(problems)} problems after restart:\n" + "\n".join(problems[:30])
    finally:
        try:
            server.stop()
        except AssertionError:
            server.kill()
    return {"creates": totals.creates, "updates": totals.updates, "deletes": totals.deletes,
            "channels": len(ledger)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kvs-crash-") as tmp:
        out = run(a.data_dir or Path(tmp), a.rounds, a.seconds, a.workers, a.seed)
    print(f"ok: {out}")


if __name__ == "__main__":
    main()
