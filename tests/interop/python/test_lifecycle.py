"""Channel lifecycle (docs/protocol.md §9.2, docs/design.md §2 'Lifecycle', behaviour.md 'Channels'):
with --lifecycle-delay 0s every transition completes before the response; with a positive delay
CREATING / UPDATING / DELETING are observable, and update, delete, GetSignalingChannelEndpoint
and a create of the same name answer ResourceInUseException meanwhile."""
import time

import pytest
from botocore.exceptions import ClientError

from kvs_harness import Server, error_code, http_status, wait_until

DELAY = 2.0  # long enough that a state is reliably observed right after the call


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
        return True


@pytest.fixture(scope="module")
def slow():
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


def test_creating(slow, name):
    kv = slow.client()
    t0 = time.monotonic()
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
    assert time.monotonic() - t0 < DELAY * 0.75, "the checks took too long to be meaningful"
    assert describe(kv, ChannelARN=arn) == info  # nothing changed
    wait_until(lambda: describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE", DELAY + 5, what="ACTIVE")
    elapsed = time.monotonic() - t0
    assert elapsed >= DELAY * 0.9, f"CREATING lasted {elapsed:.2f}s, less than the delay"
    after = describe(kv, ChannelARN=arn)
    assert after["Version"] == info["Version"] and after["CreationTime"] == info["CreationTime"]
    kv.get_signaling_channel_endpoint(ChannelARN=arn)


def test_updating(slow, name):
    kv = slow.client()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    wait_until(lambda: describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE", DELAY + 5, what="ACTIVE")
    v1 = describe(kv, ChannelARN=arn)["Version"]
    t0 = time.monotonic()
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
    assert time.monotonic() - t0 < DELAY * 0.75, "the checks took too long to be meaningful"
    assert describe(kv, ChannelARN=arn) == info
    wait_until(lambda: describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE", DELAY + 5, what="ACTIVE")
    assert time.monotonic() - t0 >= DELAY * 0.9
    after = describe(kv, ChannelARN=arn)
    assert after["Version"] == info["Version"]
    assert after["SingleMasterConfiguration"] == {"MessageTtlSeconds": 15}
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=after["Version"])


def test_deleting(slow, name):
    kv = slow.client()
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "k", "Value": "v"}])["ChannelARN"]
    wait_until(lambda: describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE", DELAY + 5, what="ACTIVE")
    v = describe(kv, ChannelARN=arn)["Version"]
    t0 = time.monotonic()
    kv.delete_signaling_channel(ChannelARN=arn, CurrentVersion=v)
    info = describe(kv, ChannelARN=arn)
    assert info["ChannelStatus"] == "DELETING"
    assert describe(kv, ChannelName=name)["ChannelStatus"] == "DELETING"
    in_use(kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.delete_signaling_channel, ChannelARN=arn)
    in_use(kv.delete_signaling_channel, ChannelARN=arn, CurrentVersion=info["Version"])
    in_use(kv.get_signaling_channel_endpoint, ChannelARN=arn)
    in_use(kv.create_signaling_channel, ChannelName=name)  # a DELETING channel still holds its name
    assert time.monotonic() - t0 < DELAY * 0.75, "the checks took too long to be meaningful"
    wait_until(lambda: gone(kv, ChannelARN=arn), DELAY + 5, what="the channel to be gone")
    assert time.monotonic() - t0 >= DELAY * 0.9
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
    # The name is free again, and the new channel starts over in CREATING.
    new = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert new != arn
    assert describe(kv, ChannelARN=new)["ChannelStatus"] == "CREATING"
    assert kv.list_tags_for_resource(ResourceARN=new)["Tags"] == {}


def test_one_second_delay(make_server, name):
    """The issue's example: --lifecycle-delay 1s."""
    s = make_server("--lifecycle-delay", "1s")
    kv = s.client()
    t0 = time.monotonic()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert describe(kv, ChannelARN=arn)["ChannelStatus"] == "CREATING"
    wait_until(lambda: describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE", 6, what="ACTIVE")
    assert 0.9 <= time.monotonic() - t0 <= 4
    kv.delete_signaling_channel(ChannelARN=arn)
    assert describe(kv, ChannelARN=arn)["ChannelStatus"] == "DELETING"
    wait_until(lambda: gone(kv, ChannelARN=arn), 6, what="gone")
