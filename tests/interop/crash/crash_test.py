"""kill -9 crash test for the SQLite store (docs/behaviour.md, docs/design.md: a write is on disk
before it is acknowledged, and a change is applied whole or not at all).

Several clients (threads, each with its own channels) create, update, tag, untag and delete
channels against a server with a --data-dir. Each client keeps, in order, the changes the server
acknowledged and folds them into its model of its channels; the one change it has in flight
when the server dies is remembered with the state before and the state after it. At a random
moment the server is killed with SIGKILL. Then, for each of `rounds` kills:

- `PRAGMA integrity_check` on the SQLite file (opened read-only with Python's sqlite3 module,
  the server being dead) answers `ok`;
- the server restarts on the same --data-dir, and every channel of every client is exactly as
  its acknowledged changes left it (ARN, TTL, Version, tags, ACTIVE), every acknowledged delete
  is gone, and nothing exists that no client asked for;
- the change in flight is all-or-nothing: the channel is either exactly as before it or exactly
  as after it (an update's TTL and Version change together; a tag or untag of several keys
  changes all of them or none; a create brings its TTL and tags with it);
- no client saw an error: an AWS error is a failure (every request is valid), and so is a
  connection that failed while the server was still running. Only the server's death may end
  a client's round.

Each round starts on top of the previous rounds' data. Bounded: `rounds` kills, each round's
waits bounded (a hang is a failure), loopback only, stops by itself.
Usage: python crash_test.py [--data-dir DIR] [--rounds N] [--clients C] [--seed S]
"""
from __future__ import annotations

import argparse
import copy
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError  # noqa: E402

from kvs_harness import Server  # noqa: E402

TAG_KEYS = [f"k{i}" for i in range(6)]
MAX_LIVE = 8  # channels per client: keeps each round's verification small
HANG = 60.0  # only bounds a hang (the load starting, a client finishing, a restart)


@dataclass
class Chan:
    """A channel as its client's acknowledged changes left it."""
    name: str
    ttl: int
    tags: dict
    arn: str | None = None  # None: created by a change in flight, not known yet
    version: str | None = None  # None: rotated by an update whose new Version was not read
    not_version: str | None = None  # ... and then it must differ from this one


@dataclass
class Op:
    kind: str
    name: str
    before: Chan | None  # None: the channel does not exist
    after: Chan | None
    keys: list = field(default_factory=list)  # the keys an untag names


@dataclass
class Client:
    cid: int
    chans: dict = field(default_factory=dict)  # name -> Chan (existing, as acknowledged)
    deleted: set = field(default_factory=set)  # names whose delete was acknowledged
    log: list = field(default_factory=list)  # (round, kind, name) of every acknowledged change
    pending: Op | None = None
    acked: dict = field(default_factory=lambda: {k: 0 for k in ("create", "update", "tag", "untag", "delete")})
    errors: list = field(default_factory=list)
    seq: int = 0


def new_op(c: Client, rng: random.Random, rnd: int) -> Op:
    live = list(c.chans.values())
    roll = rng.random()
    if len(live) < 3 or (roll < 0.2 and len(live) < MAX_LIVE):
        name = f"crash-c{c.cid}-{c.seq}"
        c.seq += 1
        tags = {k: f"v{rng.randint(0, 999)}" for k in rng.sample(TAG_KEYS, 2)}
        return Op("create", name, None, Chan(name, rng.randint(5, 120), tags))
    ch = rng.choice(live)
    before = copy.deepcopy(ch)
    after = copy.deepcopy(ch)
    if roll < 0.5:
        after.ttl = rng.choice([t for t in range(5, 121) if t != ch.ttl])
        after.version, after.not_version = None, ch.version
        return Op("update", ch.name, before, after)
    if roll < 0.7 or len(ch.tags) < 2:
        # Several keys at once, some of them replacing a value (TagResource), none a no-op.
        for k in rng.sample(TAG_KEYS, 3):
            after.tags[k] = f"v{rng.randint(1000, 1999)}"
        return Op("tag", ch.name, before, after)
    if roll < 0.85:
        keys = rng.sample(sorted(ch.tags), 2)
        for k in keys:
            del after.tags[k]
        return Op("untag", ch.name, before, after, keys)
    return Op("delete", ch.name, before, None)


def send(kv, op: Op):
    """Sends `op`; returns what the acknowledgement tells (the ARN of a create)."""
    if op.kind == "create":
        a = op.after
        return kv.create_signaling_channel(
            ChannelName=a.name, SingleMasterConfiguration={"MessageTtlSeconds": a.ttl},
            Tags=[{"Key": k, "Value": v} for k, v in a.tags.items()])["ChannelARN"]
    arn = op.before.arn
    if op.kind == "update":
        kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=op.before.version,
                                    SingleMasterConfiguration={"MessageTtlSeconds": op.after.ttl})
    elif op.kind == "tag":
        new = {k: v for k, v in op.after.tags.items() if op.before.tags.get(k) != v}
        kv.tag_resource(ResourceARN=arn, Tags=[{"Key": k, "Value": v} for k, v in new.items()])
    elif op.kind == "untag":
        kv.untag_resource(ResourceARN=arn, TagKeyList=op.keys)
    elif op.kind == "delete":
        kv.delete_signaling_channel(ChannelARN=arn)
    return None


def worker(server: Server, c: Client, rnd: int, stop: threading.Event, killed: dict, seed: int):
    rng = random.Random(seed)
    kv = server.client()
    while not stop.is_set():
        op = new_op(c, rng, rnd)
        c.pending = op
        try:
            arn = send(kv, op)
            if op.kind == "create":
                op.after.arn = arn
            c.pending = None
            if op.after is None:
                del c.chans[op.name]
                c.deleted.add(op.name)
            else:
                c.chans[op.name] = op.after
            c.acked[op.kind] += 1
            c.log.append((rnd, op.kind, op.name))
            if op.kind in ("create", "update"):  # learn the Version (a read, not a change)
                info = kv.describe_signaling_channel(ChannelARN=op.after.arn)["ChannelInfo"]
                op.after.version, op.after.not_version = info["Version"], None
        except (HTTPClientError, BotoConnectionError) as e:
            # No answer: the server died, or something dropped a connection to a live server.
            at = time.monotonic()
            kill_at = killed.get("at")
            if kill_at is None or at < kill_at:
                c.errors.append(f"round {rnd}, client {c.cid}: {op.kind} {op.name}: the connection failed "
                                f"while the server was running ({at - (kill_at or at):+.3f}s before the kill, "
                                f"server {server.url} alive: {server.proc.poll() is None}): "
                                f"{type(e).__name__}: {e}")
            return
        except ClientError as e:
            c.errors.append(f"round {rnd}, client {c.cid}: {op.kind} {op.name} refused: "
                            f"{e.response['Error']['Code']} ({e.response['ResponseMetadata']['HTTPStatusCode']}): {e}")
            return
        except Exception as e:  # noqa: BLE001  a bug of this test is a failure too, never swallowed
            c.errors.append(f"round {rnd}, client {c.cid}: {op.kind} {op.name}: {type(e).__name__}: {e}")
            return


def sqlite_file(data_dir: Path) -> Path:
    """The store's database file: kvs.sqlite3 (the SQLite store's name for it)."""
    db = data_dir / "kvs.sqlite3"
    if db.exists():
        return db
    found = sorted(p for p in data_dir.glob("*.sqlite3"))
    assert found, f"no SQLite database in {data_dir}: {sorted(p.name for p in data_dir.iterdir())}"
    return found[0]


def integrity_check(data_dir: Path) -> list:
    """PRAGMA integrity_check, read-only (the server is dead; its WAL is read, not checkpointed)."""
    con = sqlite3.connect(f"file:{sqlite_file(data_dir)}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def read_back(server: Server) -> dict:
    """name -> (ChannelInfo, tags) of every channel on the server."""
    kv = server.client()
    out, token = {}, None
    while True:
        kw = {"MaxResults": 10000, **({"NextToken": token} if token else {})}
        page = kv.list_signaling_channels(**kw)
        for info in page["ChannelInfoList"]:
            out[info["ChannelName"]] = (info, kv.list_tags_for_resource(ResourceARN=info["ChannelARN"])["Tags"])
        token = page.get("NextToken")
        if not token:
            return out


def mismatch(want: Chan | None, got) -> str | None:
    """Why the channel on the server is not `want` (None: it should not exist), or None."""
    if want is None:
        return None if got is None else "exists"
    if got is None:
        return "missing"
    info, tags = got
    why = []
    if want.arn is not None and info["ChannelARN"] != want.arn:
        why.append(f"ARN {info['ChannelARN']} != {want.arn}")
    ttl = info["SingleMasterConfiguration"]["MessageTtlSeconds"]
    if ttl != want.ttl:
        why.append(f"TTL {ttl} != {want.ttl}")
    if want.version is not None and info["Version"] != want.version:
        why.append(f"Version {info['Version']} != {want.version}")
    if want.version is None and want.not_version is not None and info["Version"] == want.not_version:
        why.append(f"Version still {want.not_version} though the TTL changed")
    if tags != want.tags:
        why.append(f"tags {tags} != {want.tags}")
    if info["ChannelStatus"] != "ACTIVE":
        why.append(f"status {info['ChannelStatus']} with --lifecycle-delay 0s")
    return "; ".join(why) or None


def adopt(want: Chan, got) -> Chan:
    """`want`, with the ARN and Version the server holds (learned from the read-back)."""
    out = copy.deepcopy(want)
    out.arn, out.version, out.not_version = got[0]["ChannelARN"], got[0]["Version"], None
    return out


def verify(clients: list[Client], actual: dict, rnd: int, outcomes: dict) -> list[str]:
    problems = []
    known = set()
    for c in clients:
        op, c.pending = c.pending, None
        names = set(c.chans) | c.deleted | ({op.name} if op else set())
        known |= names
        for name in sorted(names):
            got = actual.get(name)
            if op is not None and name == op.name:
                # The change in flight: exactly before or exactly after, nothing in between.
                miss_before, miss_after = mismatch(op.before, got), mismatch(op.after, got)
                if miss_after is None:
                    outcomes["applied"] += 1
                    c.log.append((rnd, op.kind + " (in flight, applied)", name))
                    state = op.after
                elif miss_before is None:
                    outcomes["not applied"] += 1
                    state = op.before
                else:
                    problems.append(f"client {c.cid}: {op.kind} {name} in flight at the kill is neither "
                                    f"all nor nothing: against the state before it: {miss_before}; "
                                    f"against the state after it: {miss_after}")
                    continue
                if state is None:
                    c.chans.pop(name, None)
                    c.deleted.add(name)
                else:
                    c.chans[name] = adopt(state, got)
                    c.deleted.discard(name)
                continue
            want = c.chans.get(name)
            why = mismatch(want, got)
            if why:
                history = [f"{r}:{k}" for r, k, n in c.log if n == name]
                what = "acknowledged delete undone" if want is None else "acknowledged changes lost"
                problems.append(f"client {c.cid}: {name}: {what}: {why} (its acknowledged history: {history})")
            elif want is not None:
                c.chans[name] = adopt(want, got)
    for name in sorted(set(actual) - known):
        problems.append(f"{name}: exists, but no client asked for it")
    return problems


def run(data_dir: Path, rounds: int = 20, clients: int = 4, seed: int = 1, log=print) -> dict:
    assert rounds >= 1 and clients >= 1
    rng = random.Random(seed)
    cs = [Client(i) for i in range(clients)]
    outcomes = {"applied": 0, "not applied": 0}
    server = Server(data_dir=data_dir)
    try:
        for rnd in range(rounds):
            stop, killed = threading.Event(), {}
            base = [sum(c.acked.values()) for c in cs]
            threads = [threading.Thread(target=worker, args=(server, c, rnd, stop, killed, seed * 10007 + rnd * 101 + c.cid),
                                        daemon=True) for c in cs]
            for t in threads:
                t.start()
            # The kill comes mid-load: once every client has had changes acknowledged in this
            # round (the event, not a fixed sleep), then after a random moment.
            deadline = time.monotonic() + HANG
            while not all(sum(c.acked.values()) - b >= 3 for c, b in zip(cs, base)):
                errors = [e for c in cs for e in c.errors]
                assert not errors, errors[:5]
                assert time.monotonic() < deadline, f"round {rnd}: the load did not get going in {HANG}s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            killed["at"] = time.monotonic()
            rc = server.kill()
            assert rc == -signal.SIGKILL, f"round {rnd}: the server had exited by itself with {rc} before the kill"
            stop.set()
            for t in threads:
                t.join(HANG)
                assert not t.is_alive(), f"round {rnd}: a client hung after the kill"
            errors = [e for c in cs for e in c.errors]
            assert not errors, f"round {rnd}: {len(errors)} client errors:\n" + "\n".join(errors[:10])
            in_flight = sum(c.pending is not None for c in cs)

            check = integrity_check(data_dir)
            assert check == [("ok",)], f"round {rnd}: PRAGMA integrity_check after kill -9: {check[:20]}"

            server = Server(data_dir=data_dir)
            problems = verify(cs, read_back(server), rnd, outcomes)
            assert not problems, (f"round {rnd}: {len(problems)} problems after kill -9 and restart:\n"
                                  + "\n".join(problems[:30]))
            log(f"round {rnd}: {sum(sum(c.acked.values()) for c in cs) - sum(base)} changes acknowledged, "
                f"{in_flight} in flight at the kill -9; integrity ok; state verified")
    except BaseException:
        server.kill()
        raise
    server.stop()  # checked: exit 0 within the shutdown bound
    totals = {k: sum(c.acked[k] for c in cs) for k in cs[0].acked}
    return {"kills": rounds, **totals, "in_flight": outcomes,
            "channels": sum(len(c.chans) for c in cs), "deleted": sum(len(c.deleted) for c in cs)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kvs-crash-") as tmp:
        out = run(a.data_dir or Path(tmp), a.rounds, a.clients, a.seed)
    print(f"ok: {out}")


if __name__ == "__main__":
    main()
