"""ListSignalingChannels over 1,200+ channels: page sizes, the default page, BEGINS_WITH, and
creates/deletes between pages (behaviour.md 'Channels': ordered by name, opaque keyset NextToken,
MaxResults default 500, NextToken omitted on the last page; survivors never skipped or repeated)."""
import concurrent.futures
import random
import re
import threading

import pytest

from kvs_harness import Server

GROUPS = {"pg-a-": 600, "pg-b-": 400, "pg-c-": 200, "pg-c-0007x": 3}
TOKEN_RE = re.compile(r"[a-zA-Z0-9+/=]{1,1024}")


def create_many(server, names, threads=12):
    local = threading.local()

    def create(n):
        if not hasattr(local, "kv"):
            local.kv = server.client()
        local.kv.create_signaling_channel(ChannelName=n)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))


def scan(kv, page_sizes, prefix=None, between=None):
    """All pages; `page_sizes` is an int or a callable giving the size of page i (None: omit).
    Returns (names in order, pages)."""
    names, pages, token, i = [], [], None, 0
    while True:
        kw = {}
        size = page_sizes(i) if callable(page_sizes) else page_sizes
        if size is not None:
            kw["MaxResults"] = size
        if prefix is not None:
            kw["ChannelNameCondition"] = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}
        if token:
            kw["NextToken"] = token
        out = kv.list_signaling_channels(**kw)
        page = [c["ChannelName"] for c in out["ChannelInfoList"]]
        pages.append((size, page))
        names += page
        if size is not None:
            assert len(page) <= size, (size, len(page))
        token = out.get("NextToken")
        if not token:
            break
        assert TOKEN_RE.fullmatch(token), token
        assert page, "an empty page must not carry a NextToken"
        if between:
            between(page)
        i += 1
        assert i < 5000, "pagination does not end"
    return names, pages


@pytest.fixture(scope="module")
def population():
    s = Server()
    names = [f"{g}{i:04d}" for g, n in GROUPS.items() for i in range(n)]
    random.Random(7).shuffle(names)
    create_many(s, names)
    yield s, sorted(names)
    s.stop()


@pytest.fixture(scope="module")
def pkv(population):
    return population[0].client()


def test_population_is_complete(population, pkv):
    _, expected = population
    assert len(expected) >= 1200
    out = pkv.list_signaling_channels(MaxResults=10000)
    assert "NextToken" not in out
    assert [c["ChannelName"] for c in out["ChannelInfoList"]] == expected


@pytest.mark.parametrize("size", [1, 7, 100, 499, 500, 601, 1202, 1203, 5000, 10000])
def test_full_scan_in_pages_of(population, pkv, size):
    _, expected = population
    names, pages = scan(pkv, size)
    assert names == expected  # every channel once, in name order
    assert all(0 < len(p) <= size for _, p in pages[:-1]), [len(p) for _, p in pages]


def test_default_page_is_500(population, pkv):
    _, expected = population
    first = pkv.list_signaling_channels()
    assert len(first["ChannelInfoList"]) == 500
    assert first.get("NextToken")
    names, pages = scan(pkv, None)
    assert names == expected
    assert [len(p) for _, p in pages][:2] == [500, 500]


def test_varying_page_sizes_with_one_token_chain(population, pkv):
    _, expected = population
    rng = random.Random(11)
    names, _ = scan(pkv, lambda i: rng.choice([1, 3, 50, 250, 999]))
    assert names == expected


def test_a_token_can_be_replayed(population, pkv):
    first = pkv.list_signaling_channels(MaxResults=10)
    token = first["NextToken"]
    a = pkv.list_signaling_channels(MaxResults=10, NextToken=token)
    b = pkv.list_signaling_channels(MaxResults=10, NextToken=token)
    assert a["ChannelInfoList"] == b["ChannelInfoList"]
    assert a["NextToken"] == b["NextToken"]
    assert not {c["ChannelName"] for c in a["ChannelInfoList"]} & {c["ChannelName"] for c in first["ChannelInfoList"]}


@pytest.mark.parametrize("prefix", ["pg-a-", "pg-b-", "pg-c-", "pg-c-0007", "pg-", "pg-a-05", "p", "pg-a-0599"])
@pytest.mark.parametrize("size", [None, 1, 33, 500, 10000])
def test_begins_with(population, pkv, prefix, size):
    if size == 1 and prefix in ("pg-", "p"):
        pytest.skip("covered by the full scan in pages of 1")
    _, everything = population
    expected = [n for n in everything if n.startswith(prefix)]
    assert expected
    names, _ = scan(pkv, size, prefix=prefix)
    assert names == expected


@pytest.mark.parametrize("prefix", ["zzz", "PG-", "pg-d", "pg-a-0600", "pg-a-05999"])
def test_begins_with_no_match(pkv, prefix):
    out = pkv.list_signaling_channels(
        ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix})
    assert out["ChannelInfoList"] == []
    assert "NextToken" not in out


def test_channel_info_in_listing_is_complete(population, pkv):
    out = pkv.list_signaling_channels(MaxResults=3)
    for c in out["ChannelInfoList"]:
        assert c == pkv.describe_signaling_channel(ChannelARN=c["ChannelARN"])["ChannelInfo"]
        assert set(c) >= {"ChannelName", "ChannelARN", "ChannelType", "ChannelStatus", "CreationTime",
                          "SingleMasterConfiguration", "Version"}


# --- creates and deletes between pages -----------------------------------------------------------
@pytest.mark.parametrize("prefix", [None, "mut-"])
def test_creates_and_deletes_between_pages_never_skip_or_repeat_survivors(make_server, prefix):
    s = make_server()
    kv = s.client()
    initial = [f"mut-{i:04d}" for i in range(0, 1200, 3)]  # gaps leave room to create in between
    create_many(s, initial + ["aaa-before", "zzz-after"])
    start = set(initial) | ({"aaa-before", "zzz-after"} if prefix is None else set())
    rng = random.Random(3 if prefix else 5)
    deleted, created, seen_so_far = set(), set(), []
    arns = {c["ChannelName"]: c["ChannelARN"] for c in kv.list_signaling_channels(MaxResults=10000)["ChannelInfoList"]}

    def delete(n):
        kv.delete_signaling_channel(ChannelARN=arns.pop(n))
        deleted.add(n)

    def create(n):
        if n not in arns and n not in deleted:
            arns[n] = kv.create_signaling_channel(ChannelName=n)["ChannelARN"]
            created.add(n)

    def between(page):
        seen_so_far.extend(page)
        cursor = page[-1]
        ahead = sorted(n for n in arns if n > cursor and n in start)
        behind = sorted(n for n in arns if n < cursor and n in start and n != cursor)
        for n in rng.sample(ahead, min(3, len(ahead))):
            delete(n)  # not yet seen: must never show up
        for n in rng.sample(behind, min(2, len(behind))):
            delete(n)  # already seen
        if cursor in arns and rng.random() < 0.5:
            delete(cursor)  # the token's own channel: the cursor must still work
        i = int(cursor.split("-")[1]) if cursor.startswith("mut-") and cursor[4:].isdigit() else 0
        create(f"mut-{max(i - 1, 0):04d}x")  # sorts before the cursor
        create(f"mut-{i + 1:04d}x")  # sorts after the cursor
        create(f"mut-{rng.randrange(0, 1200):04d}y")

    names, _ = scan(kv, lambda i: rng.choice([7, 13, 40]), prefix=prefix, between=between)
    assert len(names) == len(set(names)), "a channel was listed twice"
    assert names == sorted(names), "pages are not in name order"
    survivors = start - deleted
    missing = survivors - set(names)
    assert not missing, f"survivors skipped: {sorted(missing)[:10]}"
    # A channel deleted before the scan reached it is gone by then.
    deleted_unseen = {n for n in deleted if n not in set(seen_so_far)}
    assert not (deleted_unseen & set(names)), sorted(deleted_unseen & set(names))[:10]
    # New channels may or may not be listed, but nothing that never existed is.
    assert set(names) <= start | created
    assert len(deleted) > 20 and len(created) > 20  # the scan really was disturbed
