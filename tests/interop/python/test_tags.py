"""TagResource / UntagResource / ListTagsForResource and tags on create (docs/protocol.md §2.1, §3.1 notes,
§9.3; behaviour.md 'Channels': ≤ 50 per channel, existing key replaced, unknown key on untag
ignored, ListTagsForResource returns a map, {} when none)."""
import pytest
from botocore.exceptions import ClientError

from kvs_harness import error_code, http_status


def tags(kv, arn):
    return kv.list_tags_for_resource(ResourceARN=arn)["Tags"]


def raises(code, status, fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert error_code(e.value) == code, e.value.response
    assert http_status(e.value) == status
    return e.value


def many(n, start=0, prefix="k"):
    return [{"Key": f"{prefix}{i}", "Value": f"v{i}"} for i in range(start, start + n)]


def test_no_tags_is_an_empty_map(server, kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    r = server.op("ListTagsForResource", {"ResourceARN": arn})
    assert r.status_code == 200, r.text
    assert r.json()["Tags"] == {}
    assert "NextToken" not in r.json() or r.json()["NextToken"] in (None, "")


def test_tags_on_create_are_listed_as_a_map(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "a", "Value": "1"},
                                                              {"Key": "b", "Value": ""}])["ChannelARN"]
    assert tags(kv, arn) == {"a": "1", "b": ""}


def test_tag_replaces_existing_values_and_untag_ignores_unknown_keys(server, kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "a", "Value": "1"}])["ChannelARN"]
    r = server.op("TagResource", {"ResourceARN": arn, "Tags": [{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "x"}]})
    assert r.status_code == 200, r.text
    assert r.content in (b"", b"{}")
    assert tags(kv, arn) == {"a": "2", "b": "x"}
    r = server.op("UntagResource", {"ResourceARN": arn, "TagKeyList": ["b", "never-there"]})
    assert r.status_code == 200, r.text
    assert r.content in (b"", b"{}")
    assert tags(kv, arn) == {"a": "2"}
    kv.untag_resource(ResourceARN=arn, TagKeyList=["never-there"])
    assert tags(kv, arn) == {"a": "2"}
    kv.untag_resource(ResourceARN=arn, TagKeyList=["a"])
    assert tags(kv, arn) == {}


def test_tags_do_not_change_the_channel(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    before = kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "x", "Value": "y"}])
    kv.untag_resource(ResourceARN=arn, TagKeyList=["x"])
    assert kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"] == before


def test_keys_are_case_sensitive(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "Env", "Value": "1"}, {"Key": "env", "Value": "2"}])
    assert tags(kv, arn) == {"Env": "1", "env": "2"}


def test_fifty_tags_on_create_is_the_limit(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=many(50))["ChannelARN"]
    assert tags(kv, arn) == {f"k{i}": f"v{i}" for i in range(50)}
    raises("TagsPerResourceExceededLimitException", 400, kv.create_signaling_channel,
           ChannelName=name + "-51", Tags=many(51))
    raises("ResourceNotFoundException", 404, kv.describe_signaling_channel, ChannelName=name + "-51")


def test_fifty_tags_in_total(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=many(20))["ChannelARN"]
    kv.tag_resource(ResourceARN=arn, Tags=many(30, start=20))
    assert len(tags(kv, arn)) == 50
    full = tags(kv, arn)
    raises("TagsPerResourceExceededLimitException", 400, kv.tag_resource, ResourceARN=arn,
           Tags=[{"Key": "one-more", "Value": "v"}])
    # Nothing of a refused request is applied, even the keys that already exist.
    raises("TagsPerResourceExceededLimitException", 400, kv.tag_resource, ResourceARN=arn,
           Tags=[{"Key": "k0", "Value": "changed"}, {"Key": "one-more", "Value": "v"}])
    assert tags(kv, arn) == full
    # Replacing existing keys at the limit is fine: the count does not grow.
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "k0", "Value": "new"}])
    assert tags(kv, arn)["k0"] == "new"
    kv.untag_resource(ResourceARN=arn, TagKeyList=["k1"])
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert len(tags(kv, arn)) == 50


def test_fifty_one_tags_in_one_request(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    raises("TagsPerResourceExceededLimitException", 400, kv.tag_resource, ResourceARN=arn, Tags=many(51))
    assert tags(kv, arn) == {}


def test_unknown_resource_is_404(kv, name):
    arn = f"arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1712136149494"
    raises("ResourceNotFoundException", 404, kv.tag_resource, ResourceARN=arn, Tags=[{"Key": "a", "Value": "b"}])
    raises("ResourceNotFoundException", 404, kv.untag_resource, ResourceARN=arn, TagKeyList=["a"])
    raises("ResourceNotFoundException", 404, kv.list_tags_for_resource, ResourceARN=arn)


def test_tags_do_not_survive_delete_and_recreate(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "old", "Value": "1"}])["ChannelARN"]
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "more", "Value": "2"}])
    kv.delete_signaling_channel(ChannelARN=arn)
    raises("ResourceNotFoundException", 404, kv.list_tags_for_resource, ResourceARN=arn)
    new = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert tags(kv, new) == {}


def test_unicode_and_punctuation_allowed_by_the_model(kv, name):
    pairs = {"ключ": "значение", "キー": "値", "a b": "c d", "x:y/z=w+v-u@t_s.r": "", "٣": "٣"}
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": k, "Value": v} for k, v in pairs.items()])[
        "ChannelARN"]
    assert tags(kv, arn) == pairs
    kv.untag_resource(ResourceARN=arn, TagKeyList=["ключ", "a b"])
    assert tags(kv, arn) == {k: v for k, v in pairs.items() if k not in ("ключ", "a b")}
