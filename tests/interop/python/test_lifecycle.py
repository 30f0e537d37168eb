"""Channel lifecycle (docs/protocol.md §9.2, docs/design.md §2 'Lifecycle', docs/behaviour.md 'Channels'):
with --lifecycle-delay 0s every transition completes before the response; with a positive delay
CREATING / UPDATING / DELETING are observable, and update, delete, GetSignalingChannelEndpoint
and a create of the same name answer ResourceInUseException meanwhile.

No assertion here depends on how fast this machine is:
- what a transitional state allows and refuses is checked on a server whose delay is an hour,
  so every check lands inside the window however slow the machine (the ACTIVE channels it
  updates and deletes were created on the same data dir by a server without a delay);
- that a transition ends is checked on a server with a one-second delay by polling until it
  has ended (the deadline only bounds a hang), and every observation made before the delay can
  have passed (its response arrived less than the delay after the call started) must still show
  the transitional state.
"""
import time

import pytest
from botocore.exceptions import ClientError

from kvs_harness import Server, error_code, http_status

HELD = "3600s"  # the window checks: far longer than any test takes
DELAY = 1.0  # the transitions that must end
HANG = 60.0  # only bounds a hang while polling for a transition's end


def describe(kv, **kw):
    return kv.describe_signaling_channel(**kw)["ChannelInfo"]


def in_use(fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert error_code(e.value) == "ResourceInUseException", e.value.response
    assert http_status(e.value) == 400


def gone(kv, **kw):
    try:
        describe(kv, **kw)
        return False
    except ClientError as e:
        assert error_code(e) == "ResourceNotFoundException", e.response
        assert http_status(e) == 404
        return True


def status_or_gone(kv, arn):
    # One read: asking "gone?" and then describing again raced with the transition ending
    # between the two reads (seen in CI: the second describe found the channel deleted).
    try:
        return describe(kv, ChannelARN=arn)["ChannelStatus"]
    except ClientError as e:
        assert error_code(e) == "ResourceNotFoundException", e.response
        assert http_status(e) == 404
        return "GONE"


def await_transition(kv, arn, during: str, after: str, t0: float):
    """Polls until the channel's status is `after` ("GONE": deleted). Every status read whose
    response came back less than DELAY after `t0` (taken before the call that started the
    transition) must be `during`: the server cannot have ended the transition before then.
    Returns the seconds from `t0` to the first read showing `after`."""
    deadline = time.monotonic() + HANG
    seen = []
    while True:
        st = status_or_gone(kv, arn)
        at = time.monotonic() - t0
        seen.append((round(at, 3), st))
        if at < DELAY:
            assert st == during, f"{st} after {at:.3f}s, before the {DELAY}s delay could pass: {seen}"
        if st == after:
            # A read only shows the end once the delay has passed since t0.
            assert at >= DELAY, f"{after} after only {at:.3f}s: {seen}"
            return at
        assert st == during, f"expected {during} then {after}, saw {seen}"
        assert time.monotonic() < deadline, f"still {during} after {HANG}s: {seen}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A server with an hour-long delay, on a data dir already holding ACTIVE channels
    (`upd-1` and `del-1`, tagged) and a deleted one (`reborn`) from a server without a delay."""
    data = tmp_path_factory.mktemp("lifecycle")
    with Server(data_dir=data) as s:
        kv = s.client()
        for n in ("upd-1", "del-1", "reborn"):
            kv.create_signaling_channel(ChannelName=n, Tags=[{"Key": "k", "Value": "v"}])
        reborn = describe(kv, ChannelName="reborn")["ChannelARN"]
        kv.delete_signaling_channel(ChannelARN=reborn)
    s = Server("--lifecycle-delay", HELD, data_dir=data)
    s.reborn_arn = reborn
    yield s
    s.stop()


@pytest.fixture(scope="module")
def quick():
    s = Server("--lifecycle-delay", f"{int(DELAY * 1000)}ms")
    yield s
    s.stop()


def test_zero_delay_transitions_complete_before_the_response(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "ACTIVE"
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=info["Version"],
                                SingleMasterConfiguration={"MessageTtlSeconds": 20})
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "ACTIVE"
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=info["Version"])  # at once: no ResourceInUse
    kv.get_signaling_channel_endpoint(ChannelARN=arn)
    kv.delete_signaling_channel(ChannelARN=arn)
    assert gone(kv, ChannelARN=arn) and gone(kv, ChannelName=name)
    kv.create_signaling_channel(ChannelName=name)  # the name is free at once


# --- inside the window (an hour-long delay) --------------------------------------------------
def test_creating(held, name):
    kv = held.client()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "CREATING"
    listed = [c for c in kv.list_signaling_channels()["ChannelInfoList"] if c["ChannelARN"] == arn]
    assert [c["ChannelStatus"] for c in listed] == ["CREATING"]
    in_use(kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"],
           SingleMasterConfiguration={"MessageTtlSeconds": 10})
    in_use(kv.delete_signaling_channel, ChannelARN=arn)
    in_use(kv.delete_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.get_signaling_channel_endpoint, ChannelARN=arn,
           SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": "MASTER"})
    in_use(kv.create_signaling_channel, ChannelName=name)
    assert describe(kv, ChannelARN=arn) == info  # nothing changed


def test_updating(held):
    kv = held.client()
    before = describe(kv, ChannelName="upd-1")
    assert before["ChannelStatus"] == "ACTIVE"
    arn, v1 = before["ChannelARN"], before["Version"]
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1, SingleMasterConfiguration={"MessageTtlSeconds": 15})
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "UPDATING"
    # The new Version and TTL apply at once.
    assert info["Version"] != v1
    assert info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 15}
    in_use(kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"],
           SingleMasterConfiguration={"MessageTtlSeconds": 99})
    in_use(kv.delete_signaling_channel, ChannelARN=arn)
    in_use(kv.delete_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.get_signaling_channel_endpoint, ChannelARN=arn)
    assert describe(kv, ChannelARN=arn) == info


def test_deleting(held):
    kv = held.client()
    before = describe(kv, ChannelName="del-1")
    assert before["ChannelStatus"] == "ACTIVE"
    arn, v = before["ChannelARN"], before["Version"]
    kv.delete_signaling_channel(ChannelARN=arn, CurrentVersion=v)
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "DELETING"
    assert describe(kv, ChannelName="del-1")["ChannelStatus"] == "DELETING"
    in_use(kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.delete_signaling_channel, ChannelARN=arn)
    in_use(kv.delete_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.get_signaling_channel_endpoint, ChannelARN=arn)
    in_use(kv.create_signaling_channel, ChannelName="del-1")  # a DELETING channel still holds its name
    assert describe(kv, ChannelARN=arn) == info


# --- the end of each transition (a one-second delay) -----------------------------------------
def test_creating_ends_active(quick, name):
    kv = quick.client()
    t0 = time.monotonic()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    await_transition(kv, arn, "CREATING", "ACTIVE", t0)
    after = describe(kv, ChannelARN=arn)
    assert after["Version"] == info["Version"] and after["CreationTime"] == info["CreationTime"]
    kv.get_signaling_channel_endpoint(ChannelARN=arn)


def test_updating_ends_active(quick, name):
    kv = quick.client()
    t0 = time.monotonic()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    await_transition(kv, arn, "CREATING", "ACTIVE", t0)
    v1 = describe(kv, ChannelARN=arn)["Version"]
    t0 = time.monotonic()
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1, SingleMasterConfiguration={"MessageTtlSeconds": 15})
    await_transition(kv, arn, "UPDATING", "ACTIVE", t0)
    after = describe(kv, ChannelARN=arn)
    assert after["Version"] != v1
    assert after["SingleMasterConfiguration"] == {"MessageTtlSeconds": 15}
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=after["Version"])


def test_deleting_ends_gone_and_frees_the_name(quick, name):
    kv = quick.client()
    t0 = time.monotonic()
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "k", "Value": "v"}])["ChannelARN"]
    await_transition(kv, arn, "CREATING", "ACTIVE", t0)
    v = describe(kv, ChannelARN=arn)["Version"]
    t0 = time.monotonic()
    kv.delete_signaling_channel(ChannelARN=arn, CurrentVersion=v)
    await_transition(kv, arn, "DELETING", "GONE", t0)
    assert gone(kv, ChannelName=name)
    assert all(c["ChannelARN"] != arn for c in kv.list_signaling_channels()["ChannelInfoList"])
    for fn, kw in ((kv.update_signaling_channel, {"ChannelARN": arn, "CurrentVersion": v}),
                   (kv.delete_signaling_channel, {"ChannelARN": arn}),
                   (kv.list_tags_for_resource, {"ResourceARN": arn}),
                   (kv.get_signaling_channel_endpoint, {"ChannelARN": arn})):
        with pytest.raises(ClientError) as e:
            fn(**kw)
        assert error_code(e.value) == "ResourceNotFoundException", (fn, e.value.response)
        assert http_status(e.value) == 404
    # The name is free again (that the new channel starts over in CREATING is checked on the
    # held server, where no timing can hide it).
    t0 = time.monotonic()
    new = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert new != arn
    await_transition(kv, new, "CREATING", "ACTIVE", t0)
    assert kv.list_tags_for_resource(ResourceARN=new)["Tags"] == {}


def test_a_name_freed_by_a_delete_starts_over_in_creating(held):
    """`reborn` was created, tagged and deleted on this data dir by the server without a delay;
    here the name is free, and the new channel starts over in CREATING with no tags."""
    new = held.client().create_signaling_channel(ChannelName="reborn")["ChannelARN"]
    assert new != held.reborn_arn
    assert describe(held.client(), ChannelARN=new)["ChannelStatus"] == "CREATING"
    assert held.client().list_tags_for_resource(ResourceARN=new)["Tags"] == {}
