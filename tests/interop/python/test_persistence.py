"""Persistence in --data-dir (docs/design.md §2 'Storage', behaviour.md 'CLI'): SQLite at
DIR/kvs.sqlite3; every acknowledged write survives a graceful restart and kill -9; the memory
store keeps nothing."""
import signal

import pytest
from botocore.exceptions import ClientError

from kvs_harness import Server, assert_client_error


def state(kv):
    """Every channel with its tags, as the API shows them."""
    chans = kv.list_signaling_channels(MaxResults=10000)["ChannelInfoList"]
    return [(c, kv.list_tags_for_resource(ResourceARN=c["ChannelARN"])["Tags"]) for c in chans]


def write_a_bit_of_everything(kv):
    arns = [kv.create_signaling_channel(ChannelName=f"keep-{i}", Tags=[{"Key": "i", "Value": str(i)}])["ChannelARN"]
            for i in range(6)]
    v = kv.describe_signaling_channel(ChannelARN=arns[0])["ChannelInfo"]["Version"]
    kv.update_signaling_channel(ChannelARN=arns[0], CurrentVersion=v, SingleMasterConfiguration={"MessageTtlSeconds": 7})
    kv.tag_resource(ResourceARN=arns[1], Tags=[{"Key": "k", "Value": "v"}, {"Key": "i", "Value": "replaced"}])
    kv.untag_resource(ResourceARN=arns[2], TagKeyList=["i"])
    kv.delete_signaling_channel(ChannelARN=arns[3])
    v = kv.describe_signaling_channel(ChannelARN=arns[4])["ChannelInfo"]["Version"]
    kv.delete_signaling_channel(ChannelARN=arns[4], CurrentVersion=v)
    kv.create_signaling_channel(ChannelName="keep-3")  # a name reused after delete
    return arns


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_restart_keeps_every_acknowledged_write(tmp_path, how):
    s = Server(data_dir=tmp_path)
    kv = s.client()
    eu = s.client(region="eu-west-1")
    arns = write_a_bit_of_everything(kv)
    eu.create_signaling_channel(ChannelName="keep-eu", SingleMasterConfiguration={"MessageTtlSeconds": 99})
    before, before_eu = state(kv), state(eu)
    if how == "sigterm":
        assert s.stop(signal.SIGTERM) == 0
    else:
        s.kill()
    assert (tmp_path / "kvs.sqlite3").exists()
    with Server(data_dir=tmp_path) as s2:
        kv2, eu2 = s2.client(), s2.client(region="eu-west-1")
        assert state(kv2) == before
        assert state(eu2) == before_eu
        names = [c["ChannelName"] for c, _ in state(kv2)]
        assert names == ["keep-0", "keep-1", "keep-2", "keep-3", "keep-5"]
        for gone in (arns[3], arns[4]):
            with pytest.raises(ClientError) as e:
                kv2.describe_signaling_channel(ChannelARN=gone)
            assert_client_error(e.value, "ResourceNotFoundException", 404)
        # Versions survive too: the pre-restart version is the one that works.
        info = kv2.describe_signaling_channel(ChannelARN=arns[0])["ChannelInfo"]
        kv2.update_signaling_channel(ChannelARN=arns[0], CurrentVersion=info["Version"],
                                     SingleMasterConfiguration={"MessageTtlSeconds": 8})
        # A duplicate of a persisted name is still refused.
        with pytest.raises(ClientError) as e:
            kv2.create_signaling_channel(ChannelName="keep-1")
        assert_client_error(e.value, "ResourceInUseException", 400)


def test_many_restarts(tmp_path):
    expected = {}
    for round_ in range(3):
        with Server(data_dir=tmp_path) as s:
            kv = s.client()
            assert {c["ChannelName"]: c["SingleMasterConfiguration"]["MessageTtlSeconds"]
                    for c, _ in state(kv)} == expected
            kv.create_signaling_channel(ChannelName=f"r{round_}", SingleMasterConfiguration={"MessageTtlSeconds": 10})
            expected[f"r{round_}"] = 10
            for n in list(expected):
                arn = kv.describe_signaling_channel(ChannelName=n)["ChannelInfo"]["ChannelARN"]
                v = kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["Version"]
                kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v,
                                            SingleMasterConfiguration={"MessageTtlSeconds": expected[n] + 1})
                expected[n] += 1
            if round_ == 1:
                s.kill()


def test_channel_limit_counts_persisted_channels(tmp_path):
    with Server("--max-channels", "2", data_dir=tmp_path) as s:
        s.client().create_signaling_channel(ChannelName="a")
        s.client().create_signaling_channel(ChannelName="b")
    with Server("--max-channels", "2", data_dir=tmp_path) as s:
        with pytest.raises(ClientError) as e:
            s.client().create_signaling_channel(ChannelName="c")
        assert_client_error(e.value, "AccountChannelLimitExceededException", 400)


def test_credentials_mode_namespaces_persist(tmp_path):
    creds = tmp_path / "creds.toml"
    creds.write_text('[[credentials]]\naccess_key_id = "AKIDP"\nsecret_access_key = "p"\naccount_id = "333333333333"\n')
    data = tmp_path / "data"
    data.mkdir()
    with Server("--credentials", str(creds), data_dir=data) as s:
        arn = s.client(key="AKIDP", secret="p").create_signaling_channel(ChannelName="acct")["ChannelARN"]
    with Server("--credentials", str(creds), data_dir=data) as s:
        info = s.client(key="AKIDP", secret="p").describe_signaling_channel(ChannelName="acct")["ChannelInfo"]
        assert info["ChannelARN"] == arn and ":333333333333:" in arn


def test_memory_store_keeps_nothing(tmp_path):
    with Server("--store", "memory", "--data-dir", str(tmp_path)) as s:
        s.client().create_signaling_channel(ChannelName="ephemeral")
    assert not (tmp_path / "kvs.sqlite3").exists()
    with Server("--store", "memory", "--data-dir", str(tmp_path)) as s:
        assert s.client().list_signaling_channels()["ChannelInfoList"] == []


def test_lifecycle_state_survives_restart(tmp_path):
    """A channel acknowledged as created is there after a restart, whatever its phase was."""
    with Server("--lifecycle-delay", "30s", data_dir=tmp_path) as s:
        arn = s.client().create_signaling_channel(ChannelName="slow")["ChannelARN"]
        assert s.client().describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["ChannelStatus"] == "CREATING"
        s.kill()
    with Server("--lifecycle-delay", "30s", data_dir=tmp_path) as s:
        info = s.client().describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
        assert info["ChannelStatus"] in ("CREATING", "ACTIVE")
