"""Hostile connections (docs/behaviour.md 'Connections'), against the real binary with short
timeouts given by flags: slowloris clients, connections that send nothing, bodies that never
finish, a flood up to the open-file limit, a burst of 2,000 connects, the connection caps, and
TLS clients that never finish their handshake. Refusals are in the AWS
format (docs/behaviour.md 'Errors'); `/health` on a NEW connection answers 200 in under 100 ms
while each flood holds; every server is stopped and its exit checked by the harness.

Time bounds: a connection must be closed no earlier than its timeout (minus timer granularity)
and no later than SLACK after it; these bound the server's timers, they are not speed checks."""
import contextlib
import json
import re
import resource
import socket
import ssl
import subprocess
import time

import pytest
import requests

from hostile_util import (Conn, HealthWatch, check_error_parts, close_all, connect, fd_count, http_request,
                          open_many, pump, read_response, read_to_eof, refused_at_start, split_response)
from kvs_harness import Server

SLACK = 1.5  # how late after its timeout a connection may be closed (a loaded 2-core machine)
EARLY = 0.1  # how early (timer granularity)


def request_head(netloc: str, path: str = "/listSignalingChannels") -> bytes:
    """A request head long enough that trickling it never completes it within a test."""
    return (f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
            f"User-Agent: {'slow' * 40}\r\nX-Padding: {'p' * 200}\r\n\r\n").encode()


def assert_408(c: Conn, what: str):
    got = split_response(c.data)
    assert got is not None, f"{what}: no complete response before the close: {c.data[:300]!r}"
    status, headers, body, rest = got
    check_error_parts(status, headers, body, "RequestTimeoutException", 408)
    assert rest == b"", f"{what}: bytes after the 408: {rest[:100]!r}"


def closed_within(conns, since, timeout, what):
    """Every connection was closed by the server between timeout - EARLY and timeout + SLACK
    after `since(c)`."""
    still = [c for c in conns if c.closed is None]
    assert not still, f"{what}: {len(still)} of {len(conns)} connections still open after {timeout + SLACK}s"
    took = sorted(c.closed - since(c) for c in conns)
    assert took[0] >= timeout - EARLY, f"{what}: closed after {took[0]:.2f}s, before the {timeout}s timeout"
    assert took[-1] <= timeout + SLACK, f"{what}: closed only after {took[-1]:.2f}s (timeout {timeout}s)"
    return took


# --- slowloris and silent connections -------------------------------------------------------------
HEADER_TIMEOUT = 3.0


@pytest.mark.parametrize("case", ["slowloris-from-accept", "slowloris-first-byte-late", "silent"])
def test_connections_that_never_finish_their_headers_are_closed_after_the_header_timeout(make_server, case):
    """200 connections; slowloris ones send one request-header byte every 2 s (from the start, or
    starting 2 s after connecting), silent ones nothing. All are closed once --header-timeout
    (3 s) has passed since accept, not since their last byte; one that sent part of a request
    first gets a 408 RequestTimeoutException, one that sent nothing is just closed."""
    s = make_server("--header-timeout", f"{HEADER_TIMEOUT:g}s")
    head = request_head(s.netloc)
    first = {"slowloris-from-accept": 0.0, "slowloris-first-byte-late": 2.0, "silent": None}[case]
    with HealthWatch(s.port) as watch:
        start = time.monotonic()
        conns = open_many(s.port, 200)
        try:
            def tick(now):
                for c in conns:
                    if first is None or c.closed is not None or c.data:
                        continue
                    due = c.connected + first + 2.0 * c.sent
                    if now >= due and c.sent < len(head):
                        try:
                            c.sock.send(head[c.sent:c.sent + 1])
                            c.sent += 1
                        except OSError:
                            pass  # closed under us: the read side sees it
            pump(conns, until=time.monotonic() + HEADER_TIMEOUT + SLACK + 1, tick=tick)
            watch.check(start, time.monotonic(), f"200 {case} connections")
            closed_within(conns, lambda c: c.connected, HEADER_TIMEOUT, case)
            for c in conns:
                if first is None:
                    assert (c.data, c.how) == (b"", "eof"), f"a silent connection got {c.data[:200]!r} ({c.how})"
                else:
                    assert c.sent >= 1
                    assert_408(c, case)
        finally:
            close_all(conns)
    r = requests.post(s.url + "/listSignalingChannels", data="{}", timeout=10)
    assert r.status_code == 200, r.text


# --- bodies that never finish ---------------------------------------------------------------------
BODY_TIMEOUT = 2.0


@pytest.mark.parametrize("case", ["content-length-stalled", "chunked-stalled", "trickled"])
def test_bodies_that_never_finish_are_408_after_the_body_timeout(make_server, case):
    """10 requests whose body never finishes (the declared length never arrives, the chunked
    terminator never comes, or the body trickles in one byte every 0.5 s): 408
    RequestTimeoutException in the AWS format once --body-timeout (2 s) has passed, then the
    connection is closed; nothing is created."""
    s = make_server("--body-timeout", f"{BODY_TIMEOUT:g}s")
    body = json.dumps({"ChannelName": "never-finished"}).encode()
    if case == "chunked-stalled":
        head = (f"POST /createSignalingChannel HTTP/1.1\r\nHost: {s.netloc}\r\nContent-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n").encode()
        first = b"%x\r\n%s\r\n" % (len(body), body)  # a whole chunk, never the last one
    else:
        padded = body + b" " * 100
        head = (f"POST /createSignalingChannel HTTP/1.1\r\nHost: {s.netloc}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(padded) + 1}\r\n\r\n").encode()
        first = padded[:10] if case == "content-length-stalled" else b""
    with HealthWatch(s.port) as watch:
        start = time.monotonic()
        conns = open_many(s.port, 10)
        try:
            for c in conns:
                c.sock.sendall(head + first)
                c.opened = time.monotonic()  # the body's clock starts with the headers
            pos = {id(c): 0 for c in conns}

            def tick(now):
                if case != "trickled":
                    return
                for c in conns:
                    if c.closed is None and not c.data and now >= c.opened + 0.5 * (pos[id(c)] + 1):
                        try:
                            c.sock.send(padded[pos[id(c)]:pos[id(c)] + 1])
                            pos[id(c)] += 1
                        except OSError:
                            pass
            pump(conns, until=time.monotonic() + BODY_TIMEOUT + SLACK + 1, tick=tick)
            watch.check(start, time.monotonic(), f"10 {case} bodies")
            closed_within(conns, lambda c: c.opened, BODY_TIMEOUT, case)
            for c in conns:
                assert_408(c, case)
        finally:
            close_all(conns)
    assert s.client().list_signaling_channels()["ChannelInfoList"] == []


# --- the open-file limit --------------------------------------------------------------------------
NOFILE = 256


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def test_a_flood_to_the_open_file_limit_is_shed_while_health_and_existing_connections_are_served():
    """The server runs with 256 open files. 150 slowloris, 150 silent and 10 never-finishing-body
    connections (310 > 256) are opened and held. Meanwhile: /health on a new connection answers
    200 in under 100 ms, a keep-alive connection opened before the flood is still served, and
    connections beyond what the server can hold are shed (503 ServiceUnavailableException, or
    closed). When the flood ends every connection is usable again."""
    timeout = 8.0
    with Server("--header-timeout", f"{timeout:g}s", "--body-timeout", f"{timeout:g}s",
                preexec_fn=low_nofile) as s:
        with open(f"/proc/{s.proc.pid}/limits") as f:
            limits = f.read()
        assert re.search(rf"Max open files\s+{NOFILE}\s+{NOFILE}", limits), limits
        existing = connect(s.port)
        list_req = http_request("POST", "/listSignalingChannels", s.netloc, b"{}")
        existing.sendall(list_req)
        assert read_response(existing)[0] == 200
        head = request_head(s.netloc)
        body_head = (f"POST /createSignalingChannel HTTP/1.1\r\nHost: {s.netloc}\r\n"
                     f"Content-Length: 1000\r\n\r\n{{\"Chan").encode()
        with HealthWatch(s.port) as watch:
            start = time.monotonic()
            conns = open_many(s.port, 310)
            peak = 0
            try:
                for i, c in enumerate(conns):
                    with contextlib.suppress(OSError):
                        if i < 150:
                            c.sock.send(head[:1])
                            c.sent = 1
                        elif i >= 300:
                            c.sock.send(body_head)
                hold_until = time.monotonic() + 4.0

                def tick(now):
                    nonlocal peak
                    peak = max(peak, fd_count(s.proc.pid))
                    for c in conns[:150]:
                        if c.closed is None and not c.data and now >= c.connected + 1.0 * c.sent:
                            with contextlib.suppress(OSError):
                                c.sock.send(head[c.sent:c.sent + 1])
                                c.sent += 1
                pump(conns, until=hold_until, tick=tick, tick_every=0.1)
                # The keep-alive connection from before the flood is still served.
                existing.sendall(list_req)
                status, _, body, _ = read_response(existing, timeout=10)
                assert status == 200, body
                watch.check(start, time.monotonic(), "a flood to the open-file limit")
            finally:
                close_all(conns)
                existing.close()
        shed = [c for c in conns if c.data.startswith(b"HTTP/1.1 503")]
        for c in shed:
            got = split_response(c.data)
            assert got, c.data[:300]
            check_error_parts(got[0], got[1], got[2], "ServiceUnavailableException", 503)
        assert shed or peak >= NOFILE - 8, (
            f"the flood never reached the limit: no connection shed, at most {peak} files open")
        for c in conns:
            if c.data and not c.data.startswith(b"HTTP/1.1 503"):
                assert_408(c, "a flood connection")
        # Over: every new connection is served as before.
        for _ in range(20):
            r = requests.post(s.url + "/listSignalingChannels", data="{}", timeout=10)
            assert r.status_code == 200, r.text
        print(f"flood: {len(shed)} of 310 shed with 503; at most {peak} files open")


# --- a burst of connects, the listen backlog -------------------------------------------------------
def somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


def listeners(pid: int) -> dict[int, int]:
    """Listening TCP port -> its backlog (ss's Send-Q for a listening socket), of process `pid`."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        fields = line.split()
        found[int(fields[3].rsplit(":", 1)[1])] = int(fields[2])
    return found


def ports(s: Server, tmp_path) -> dict[str, int]:
    tls = int(re.search(r"listening on https://\S+:(\d+)", s.ready_line).group(1))
    ice = s.post("/v1/get-ice-server-config", {"ChannelARN": s.client().create_signaling_channel(
        ChannelName="backlog")["ChannelARN"]}).json()
    # The plain TURN TCP port (turns: names the TLS listener, here the HTTPS port).
    turn = {int(re.search(r":(\d+)\?transport=tcp", u).group(1))
            for server in ice["IceServerList"] for u in server["Uris"]
            if u.startswith("turn:") and "transport=tcp" in u}
    assert len(turn) == 1, ice
    return {"http": s.port, "tls": tls, "turn-tcp": turn.pop()}


@pytest.mark.parametrize("backlog", [None, 2048])
def test_every_listener_has_the_configured_backlog(make_server, tmp_path, backlog):
    """--listen-backlog (default 4096) on the HTTP, TLS and TURN/TCP listeners: the kernel
    reports it (capped by net.core.somaxconn) as the listening socket's Send-Q."""
    extra = ["--listen-backlog", str(backlog)] if backlog else []
    s = make_server("--tls-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", *extra,
                    data_dir=tmp_path, store="memory")
    want = min(backlog or 4096, somaxconn())
    got = listeners(s.proc.pid)
    by_name = ports(s, tmp_path)
    assert {name: got.get(port) for name, port in by_name.items()} == {name: want for name in by_name}, got


@pytest.mark.parametrize("listener", ["http", "tls", "turn-tcp"])
def test_a_burst_of_2000_connects_is_accepted_without_syn_retries(make_server, tmp_path, listener):
    """2,000 connects at once: each completes well under the 1 s of a SYN retry (a full accept
    queue drops SYNs), and on the HTTP listener every one of them is then served."""
    s = make_server("--tls-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", data_dir=tmp_path, store="memory")
    port = ports(s, tmp_path)[listener]
    assert somaxconn() >= 1024, "net.core.somaxconn below 1024 caps every backlog"
    with HealthWatch(s.port) as watch:
        start = time.monotonic()
        conns = open_many(s.port if listener == "http" else port, 2000, timeout=30)
        try:
            took = sorted(c.connected - c.opened for c in conns)
            assert took[-1] < 0.5, (f"slowest connect {took[-1]:.2f}s (SYN retried?); "
                                    f"p50 {took[1000]:.3f}s p99 {took[1980]:.3f}s")
            time.sleep(0.5)  # hold the 2,000 open for a moment, /health probed meanwhile
            watch.check(start, time.monotonic(), f"2,000 connects on the {listener} listener")
            if listener == "http":
                req = http_request("GET", "/health", s.netloc, close=True)
                for c in conns:
                    c.sock.setblocking(True)
                    c.sock.sendall(req)
                pump(conns, until=time.monotonic() + 60)
                bad = [c.data[:80] for c in conns if not c.data.startswith(b"HTTP/1.1 200")]
                assert not bad, f"{len(bad)} of 2000 not served: {bad[:3]}"
        finally:
            close_all(conns)


# --- connection caps ------------------------------------------------------------------------------
def from_addr(port: int, addr: str) -> socket.socket:
    """A connection from another loopback address (127.0.0.0/8 is all local), so the probes and
    the harness (127.0.0.1) are counted apart from the connections a test holds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    return s


def served(sock, netloc) -> tuple[int, dict, bytes]:
    sock.sendall(http_request("POST", "/listSignalingChannels", netloc, b"{}"))
    status, headers, body, _ = read_response(sock)
    return status, headers, body


@pytest.mark.parametrize("cap", ["per-ip", "per-node"])
def test_connections_over_a_cap_are_refused_in_aws_format_but_probes_are_answered(make_server, cap):
    """20 keep-alive connections from 127.0.0.2 fill --max-connections-per-ip 20 (or
    --max-connections 20). A new one asking for an API call gets 400 ClientLimitExceededException
    (per address; 503 ServiceUnavailableException per node) and is closed; /health, /ready and
    /metrics on new connections are answered 200. Per address, 127.0.0.3 is not affected; once
    some of the 20 close, new connections are served again."""
    flag = "--max-connections-per-ip" if cap == "per-ip" else "--max-connections"
    code, status = (("ClientLimitExceededException", 400) if cap == "per-ip"
                    else ("ServiceUnavailableException", 503))
    s = make_server(flag, "20")
    held = []
    try:
        for _ in range(20):
            c = from_addr(s.port, "127.0.0.2")
            assert served(c, s.netloc)[0] == 200
            held.append(c)
        with HealthWatch(s.port) as watch, watch.window(f"connections over the {cap} cap"):
            over = from_addr(s.port, "127.0.0.2")
            st, hdrs, body = served(over, s.netloc)
            check_error_parts(st, hdrs, body, code, status)
            assert read_to_eof(over, timeout=10)[0] == b""
            over.close()
            for path in ("/health", "/ready", "/metrics"):
                probe = from_addr(s.port, "127.0.0.2")
                probe.sendall(http_request("GET", path, s.netloc))
                st, _, body, _ = read_response(probe)
                assert st == 200, (path, st, body[:200])
                probe.close()
            other = from_addr(s.port, "127.0.0.3")
            if cap == "per-ip":
                assert served(other, s.netloc)[0] == 200, "another address is not capped"
            else:
                st, hdrs, body = served(other, s.netloc)
                check_error_parts(st, hdrs, body, code, status)
            other.close()
            for c in held[:5]:
                c.close()
            del held[:5]
            again = from_addr(s.port, "127.0.0.2")
            deadline = time.monotonic() + 10  # the server notices the five closes
            while (st := served(again, s.netloc)[0]) != 200 and time.monotonic() < deadline:
                again.close()
                time.sleep(0.05)
                again = from_addr(s.port, "127.0.0.2")
            assert st == 200
            assert served(again, s.netloc)[0] == 200, "a connection under the cap is kept alive"
            again.close()
    finally:
        for c in held:
            c.close()


# --- TLS clients that never finish their handshake -------------------------------------------------
HANDSHAKE_TIMEOUT = 2.0


def client_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16", hello[:10]  # a TLS handshake record
    return hello


@pytest.mark.parametrize("case", ["silent", "half-a-client-hello", "client-hello-then-silent", "trickled-client-hello"])
def test_tls_clients_that_never_finish_the_handshake_are_closed(make_server, tmp_path, case):
    """20 TCP clients on the TLS listener that send nothing, half a ClientHello, a whole one and
    then nothing, or a ClientHello one byte every 0.5 s: each is closed once --handshake-timeout
    (2 s) has passed since it connected; a real TLS client is served meanwhile."""
    s = make_server("--tls-listen", "127.0.0.1:0", "--handshake-timeout", f"{HANDSHAKE_TIMEOUT:g}s",
                    data_dir=tmp_path, store="memory")
    port = int(re.search(r"listening on https://\S+:(\d+)", s.ready_line).group(1))
    hello = client_hello()
    with HealthWatch(s.port) as watch:
        start = time.monotonic()
        conns = open_many(port, 20)
        try:
            for c in conns:
                if case == "half-a-client-hello":
                    c.sock.sendall(hello[:len(hello) // 2])
                elif case == "client-hello-then-silent":
                    c.sock.sendall(hello)

            def tick(now):
                if case != "trickled-client-hello":
                    return
                for c in conns:
                    if c.closed is None and now >= c.connected + 0.5 * c.sent and c.sent < len(hello):
                        with contextlib.suppress(OSError):
                            c.sock.send(hello[c.sent:c.sent + 1])
                            c.sent += 1
            pump(conns, until=time.monotonic() + HANDSHAKE_TIMEOUT + SLACK + 1, tick=tick)
            ok = requests.get(f"https://localhost:{port}/health", verify=str(tmp_path / "tls" / "ca.pem"), timeout=10)
            assert ok.status_code == 200
            watch.check(start, time.monotonic(), f"20 {case} TLS clients")
            closed_within(conns, lambda c: c.connected, HANDSHAKE_TIMEOUT, case)
            for c in conns:
                if case != "client-hello-then-silent":
                    assert c.data == b"", f"{case}: the server sent {c.data[:50]!r} to an unfinished ClientHello"
                else:
                    assert c.data[:1] == b"\x16", c.data[:10]  # its ServerHello flight, then the close
        finally:
            close_all(conns)


# --- configuration --------------------------------------------------------------------------------
# --ice-ttl and --node-lease are left out: their range checks already refuse such a value.
DURATION_FLAGS = ["--max-connection-duration", "--idle-timeout", "--go-away-grace", "--shutdown-timeout",
                  "--header-timeout", "--body-timeout", "--keepalive-timeout", "--handshake-timeout",
                  "--alexa-answer-timeout", "--lifecycle-delay"]


@pytest.mark.parametrize("flag", DURATION_FLAGS)
def test_a_duration_that_overflows_is_refused_at_start_up(tmp_path, flag):
    """`--max-connection-duration 18446744073709551615s` (and the same for every duration flag)
    is refused at start-up, exit code 2 with a one-line error, not a panic when a timer is set."""
    rc, err = refused_at_start(flag, "18446744073709551615s", data_dir=tmp_path)
    assert rc == 2, (rc, err[-2000:])
    # One line; the argument parser's usage hint after it is not part of the error.
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("For more information")]
    assert len(lines) == 1, err[-2000:]
    assert "panic" not in err and flag in err, err
