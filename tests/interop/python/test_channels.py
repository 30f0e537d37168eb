"""Create / Describe / Update / Delete through boto3 (client-side validation off), checked against
docs/protocol.md §2.1, §3, §9 and behaviour.md 'Channels'."""
import datetime as dt
import random
import re
import string
import time

import pytest
from botocore.exceptions import ClientError

from kvs_harness import assert_aws_error, error_code, http_status

ARN_RE = r"arn:aws:kinesisvideo:{region}:{account}:channel/{name}/(\d{{13}})"


def describe(kv, **kw):
    return kv.describe_signaling_channel(**kw)["ChannelInfo"]


def raises(code, status, fn, *a, **kw):
    with pytest.raises(ClientError) as e:
        fn(*a, **kw)
    assert error_code(e.value) == code, e.value.response
    assert http_status(e.value) == status, e.value.response
    return e.value


def random_version():
    return "".join(random.choices(string.ascii_letters + string.digits, k=20))


# --- create / describe ------------------------------------------------------------------------
def test_create_returns_arn_and_describe_shows_defaults(kv, name):
    before = time.time()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    after = time.time()
    m = re.fullmatch(ARN_RE.format(region="us-east-1", account="000000000000", name=re.escape(name)), arn)
    assert m, arn
    millis = int(m.group(1))
    assert before * 1000 - 2000 <= millis <= after * 1000 + 2000, (before, millis, after)

    info = describe(kv, ChannelName=name)
    assert info == describe(kv, ChannelARN=arn)
    assert info["ChannelName"] == name
    assert info["ChannelARN"] == arn
    assert info["ChannelType"] == "SINGLE_MASTER"
    assert info["ChannelStatus"] == "ACTIVE"
    assert info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 60}
    assert re.fullmatch(r"[A-Za-z0-9]{20}", info["Version"]), info["Version"]
    assert isinstance(info["CreationTime"], dt.datetime)
    assert round(info["CreationTime"].timestamp() * 1000) == millis


def test_creation_time_is_an_epoch_seconds_number_on_the_wire(server, name):
    r = server.op("CreateSignalingChannel", {"ChannelName": name})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    arn = r.json()["ChannelARN"]
    r = server.op("DescribeSignalingChannel", {"ChannelARN": arn})
    assert r.status_code == 200, r.text
    ct = r.json()["ChannelInfo"]["CreationTime"]
    assert isinstance(ct, (int, float)) and not isinstance(ct, bool), ct
    assert abs(ct - time.time()) < 120
    assert abs(ct * 1000 - int(arn.rsplit("/", 1)[1])) < 1.0, (ct, arn)
    assert isinstance(r.json()["ChannelInfo"]["SingleMasterConfiguration"]["MessageTtlSeconds"], int)


def test_create_with_explicit_type_and_ttl(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, ChannelType="SINGLE_MASTER",
                                      SingleMasterConfiguration={"MessageTtlSeconds": 5})["ChannelARN"]
    assert describe(kv, ChannelARN=arn)["SingleMasterConfiguration"] == {"MessageTtlSeconds": 5}
    arn = kv.create_signaling_channel(ChannelName=name + "-b",
                                      SingleMasterConfiguration={"MessageTtlSeconds": 120})["ChannelARN"]
    assert describe(kv, ChannelARN=arn)["SingleMasterConfiguration"] == {"MessageTtlSeconds": 120}
    # An empty configuration means the default TTL.
    arn = kv.create_signaling_channel(ChannelName=name + "-c", SingleMasterConfiguration={})["ChannelARN"]
    assert describe(kv, ChannelARN=arn)["SingleMasterConfiguration"] == {"MessageTtlSeconds": 60}


def test_duplicate_name_is_resource_in_use_and_changes_nothing(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    raises("ResourceInUseException", 400, kv.create_signaling_channel, ChannelName=name,
           SingleMasterConfiguration={"MessageTtlSeconds": 10})
    assert describe(kv, ChannelName=name) == info
    assert [c["ChannelARN"] for c in kv.list_signaling_channels(
        ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}
    )["ChannelInfoList"]] == [arn]


def test_names_are_per_region(server, name):
    east = server.client(region="us-east-1")
    west = server.client(region="eu-west-1")
    a = east.create_signaling_channel(ChannelName=name)["ChannelARN"]
    b = west.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert a.startswith("arn:aws:kinesisvideo:us-east-1:000000000000:channel/")
    assert b.startswith("arn:aws:kinesisvideo:eu-west-1:000000000000:channel/")
    assert describe(west, ChannelName=name)["ChannelARN"] == b
    # Another region's channel is not found (behaviour.md 'Errors').
    raises("ResourceNotFoundException", 404, west.describe_signaling_channel, ChannelARN=a)
    raises("ResourceNotFoundException", 404, east.describe_signaling_channel, ChannelARN=b)


def test_open_mode_account_and_region_flags(make_server, name):
    s = make_server("--account-id", "123456789012", "--region", "eu-central-1")
    arn = s.client(region="ap-south-1").create_signaling_channel(ChannelName=name)["ChannelARN"]
    # The SigV4 scope's region wins; the account is the configured one.
    assert arn.startswith("arn:aws:kinesisvideo:ap-south-1:123456789012:channel/" + name + "/"), arn
    # A request without any SigV4 scope lands in --region.
    r = s.op("CreateSignalingChannel", {"ChannelName": name}, sign_request=False)
    assert r.status_code == 200, r.text
    assert r.json()["ChannelARN"].startswith("arn:aws:kinesisvideo:eu-central-1:123456789012:channel/")


def test_describe_unknown_is_404(kv, name):
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelName=name)
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel,
           ChannelARN=f"arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1712136149494")


def test_describe_with_a_stale_arn_of_a_recreated_name_is_404(kv, name):
    old = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    kv.delete_signaling_channel(ChannelARN=old)
    time.sleep(0.005)
    new = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert new != old
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelARN=old)
    assert describe(kv, ChannelName=name)["ChannelARN"] == new


def test_list_shows_the_same_channel_info_as_describe(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, SingleMasterConfiguration={"MessageTtlSeconds": 33})[
        "ChannelARN"]
    listed = [c for c in kv.list_signaling_channels()["ChannelInfoList"] if c["ChannelARN"] == arn]
    assert listed == [describe(kv, ChannelARN=arn)]


# --- update -------------------------------------------------------------------------------------
def test_update_succeeds_with_empty_body_and_rotates_version(server, kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    before = describe(kv, ChannelARN=arn)
    r = server.op("UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": before["Version"],
                                             "SingleMasterConfiguration": {"MessageTtlSeconds": 5}})
    assert r.status_code == 200, r.text
    assert r.content == b"", f"UpdateSignalingChannel must answer 200 with an empty body, got {r.content!r}"
    after = describe(kv, ChannelARN=arn)
    assert after["Version"] != before["Version"]
    assert re.fullmatch(r"[A-Za-z0-9]{20}", after["Version"])
    assert after["SingleMasterConfiguration"] == {"MessageTtlSeconds": 5}
    assert after["ChannelStatus"] == "ACTIVE"
    for k in ("ChannelName", "ChannelARN", "ChannelType", "CreationTime"):
        assert after[k] == before[k], k
    # The other boundary, through boto3.
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=after["Version"],
                                SingleMasterConfiguration={"MessageTtlSeconds": 120})
    assert describe(kv, ChannelARN=arn)["SingleMasterConfiguration"] == {"MessageTtlSeconds": 120}


def test_update_without_configuration_keeps_ttl_and_rotates_version(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, SingleMasterConfiguration={"MessageTtlSeconds": 42})[
        "ChannelARN"]
    v = describe(kv, ChannelARN=arn)["Version"]
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v)
    info = describe(kv, ChannelARN=arn)
    assert info["Version"] != v
    assert info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 42}


def test_every_version_is_fresh(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    seen = [describe(kv, ChannelARN=arn)["Version"]]
    for ttl in range(10, 30):
        kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=seen[-1],
                                    SingleMasterConfiguration={"MessageTtlSeconds": ttl})
        seen.append(describe(kv, ChannelARN=arn)["Version"])
    assert len(set(seen)) == len(seen)
    assert all(re.fullmatch(r"[A-Za-z0-9]{20}", v) for v in seen)


@pytest.mark.parametrize("which", ["stale", "random"])
def test_update_with_wrong_version_is_version_mismatch_and_changes_nothing(kv, name, which):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v1 = describe(kv, ChannelARN=arn)["Version"]
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1, SingleMasterConfiguration={"MessageTtlSeconds": 30})
    info = describe(kv, ChannelARN=arn)
    wrong = v1 if which == "stale" else random_version()
    raises("VersionMismatchException", 400, kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=wrong,
           SingleMasterConfiguration={"MessageTtlSeconds": 100})
    assert describe(kv, ChannelARN=arn) == info


@pytest.mark.parametrize("ttl", [4, 121, 0, -1, 2**31, 10**12])
def test_update_ttl_out_of_range_is_invalid_and_changes_nothing(kv, name, ttl):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    raises("InvalidArgumentException", 400, kv.update_signaling_channel, ChannelARN=arn,
           CurrentVersion=info["Version"], SingleMasterConfiguration={"MessageTtlSeconds": ttl})
    assert describe(kv, ChannelARN=arn) == info


def test_update_requires_arn_and_current_version(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = describe(kv, ChannelARN=arn)
    raises("InvalidArgumentException", 400, kv.update_signaling_channel, ChannelARN=arn,
           SingleMasterConfiguration={"MessageTtlSeconds": 30})
    raises("InvalidArgumentException", 400, kv.update_signaling_channel, CurrentVersion=info["Version"],
           SingleMasterConfiguration={"MessageTtlSeconds": 30})
    assert describe(kv, ChannelARN=arn) == info


def test_update_unknown_or_deleted_channel_is_404(kv, name):
    raises("ResourceNotFoundException", 404, kv.update_signaling_channel,
           ChannelARN=f"arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1712136149494",
           CurrentVersion=random_version())
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v = describe(kv, ChannelARN=arn)["Version"]
    kv.delete_signaling_channel(ChannelARN=arn)
    raises("ResourceNotFoundException", 404, kv.update_signaling_channel, ChannelARN=arn, CurrentVersion=v)


# --- delete -------------------------------------------------------------------------------------
def test_delete_with_current_version(server, kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    r = server.op("DeleteSignalingChannel", {"ChannelARN": arn,
                                             "CurrentVersion": describe(kv, ChannelARN=arn)["Version"]})
    assert r.status_code == 200, r.text
    assert r.content in (b"", b"{}"), r.content
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelARN=arn)
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelName=name)
    assert all(c["ChannelARN"] != arn for c in kv.list_signaling_channels()["ChannelInfoList"])


def test_delete_without_current_version(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v = describe(kv, ChannelARN=arn)["Version"]
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v)
    kv.delete_signaling_channel(ChannelARN=arn)
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelARN=arn)


@pytest.mark.parametrize("which", ["stale", "random"])
def test_delete_with_wrong_version_is_version_mismatch_and_keeps_the_channel(kv, name, which):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v1 = describe(kv, ChannelARN=arn)["Version"]
    kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1)
    info = describe(kv, ChannelARN=arn)
    raises("VersionMismatchException", 400, kv.delete_signaling_channel, ChannelARN=arn,
           CurrentVersion=v1 if which == "stale" else random_version())
    assert describe(kv, ChannelARN=arn) == info


def test_delete_unknown_or_twice_is_404(kv, name):
    raises("ResourceNotFoundException", 404, kv.delete_signaling_channel,
           ChannelARN=f"arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1712136149494")
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    kv.delete_signaling_channel(ChannelARN=arn)
    raises("ResourceNotFoundException", 404, kv.delete_signaling_channel, ChannelARN=arn)


def test_name_is_reusable_after_delete(kv, name):
    old = kv.create_signaling_channel(ChannelName=name, SingleMasterConfiguration={"MessageTtlSeconds": 9})[
        "ChannelARN"]
    kv.delete_signaling_channel(ChannelARN=old)
    time.sleep(0.005)
    new = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert new != old
    assert describe(kv, ChannelName=name)["SingleMasterConfiguration"] == {"MessageTtlSeconds": 60}


# --- account channel limit ------------------------------------------------------------------------
def test_account_channel_limit(make_server):
    s = make_server("--max-channels", "3")
    kv = s.client()
    arns = [kv.create_signaling_channel(ChannelName=f"lim-{i}")["ChannelARN"] for i in range(3)]
    raises("AccountChannelLimitExceededException", 400, kv.create_signaling_channel, ChannelName="lim-3")
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelName="lim-3")
    assert len(kv.list_signaling_channels()["ChannelInfoList"]) == 3
    # The limit is per account and region.
    s.client(region="eu-west-1").create_signaling_channel(ChannelName="lim-3")
    # A delete frees a slot.
    kv.delete_signaling_channel(ChannelARN=arns[0])
    kv.create_signaling_channel(ChannelName="lim-3")
    raises("AccountChannelLimitExceededException", 400, kv.create_signaling_channel, ChannelName="lim-4")


def test_account_channel_limit_error_wire(make_server):
    s = make_server("--max-channels", "1")
    assert s.op("CreateSignalingChannel", {"ChannelName": "one"}).status_code == 200
    assert_aws_error(s.op("CreateSignalingChannel", {"ChannelName": "two"}), "AccountChannelLimitExceededException", 400)
