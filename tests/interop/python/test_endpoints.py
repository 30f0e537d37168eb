"""GetSignalingChannelEndpoint (docs/protocol.md §2.1, §9.3; docs/design.md §2 'Endpoints';
behaviour.md 'Channels'): one item per requested protocol, URLs of this server as the client
reached it (or --public-endpoint), WSS+HTTPS/MASTER by default, duplicates answered once,
WEBRTC without media storage refused, unknown channel 404."""
import pytest
import requests
from botocore.exceptions import ClientError

from kvs_harness import error_code, http_status


def endpoints(kv, arn, **cfg):
    kw = {"ChannelARN": arn}
    if cfg:
        kw["SingleMasterChannelEndpointConfiguration"] = cfg
    items = kv.get_signaling_channel_endpoint(**kw)["ResourceEndpointList"]
    protos = [i["Protocol"] for i in items]
    assert len(protos) == len(set(protos)), items
    return {i["Protocol"]: i["ResourceEndpoint"] for i in items}


@pytest.fixture
def arn(kv, name):
    return kv.create_signaling_channel(ChannelName=name)["ChannelARN"]


@pytest.mark.parametrize("role", ["MASTER", "VIEWER"])
def test_wss_and_https_point_at_this_server(server, kv, arn, role):
    eps = endpoints(kv, arn, Protocols=["WSS", "HTTPS"], Role=role)
    assert eps == {"WSS": f"ws://127.0.0.1:{server.port}", "HTTPS": f"http://127.0.0.1:{server.port}"}


@pytest.mark.parametrize("role", ["MASTER", "VIEWER"])
@pytest.mark.parametrize("protocols", [["WSS"], ["HTTPS"], ["HTTPS", "WSS"]])
def test_only_the_requested_protocols(server, kv, arn, role, protocols):
    eps = endpoints(kv, arn, Protocols=protocols, Role=role)
    assert set(eps) == set(protocols)


def test_default_configuration_is_wss_and_https(server, kv, arn):
    assert endpoints(kv, arn) == {"WSS": f"ws://127.0.0.1:{server.port}", "HTTPS": f"http://127.0.0.1:{server.port}"}
    # Protocols without a role, and a role without protocols.
    assert set(endpoints(kv, arn, Protocols=["HTTPS"])) == {"HTTPS"}
    assert set(endpoints(kv, arn, Role="VIEWER")) == {"WSS", "HTTPS"}


def test_duplicated_protocols_are_answered_once(kv, arn):
    assert set(endpoints(kv, arn, Protocols=["WSS", "WSS", "HTTPS", "HTTPS", "WSS"], Role="MASTER")) == {"WSS",
                                                                                                        "HTTPS"}


def test_endpoints_follow_the_host_the_client_used(server, name):
    kv = server.client(endpoint_url=f"http://localhost:{server.port}")
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert endpoints(kv, arn, Protocols=["WSS", "HTTPS"], Role="VIEWER") == {
        "WSS": f"ws://localhost:{server.port}", "HTTPS": f"http://localhost:{server.port}"}


def test_public_endpoint_overrides(make_server, name):
    s = make_server("--public-endpoint", "https://kvs.example.com")
    kv = s.client()
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert endpoints(kv, arn, Protocols=["WSS", "HTTPS"], Role="MASTER") == {
        "WSS": "wss://kvs.example.com", "HTTPS": "https://kvs.example.com"}


def test_webrtc_without_media_storage_is_invalid(kv, arn):
    for protocols in (["WEBRTC"], ["WSS", "HTTPS", "WEBRTC"]):
        with pytest.raises(ClientError) as e:
            kv.get_signaling_channel_endpoint(
                ChannelARN=arn, SingleMasterChannelEndpointConfiguration={"Protocols": protocols, "Role": "MASTER"})
        assert error_code(e.value) == "InvalidArgumentException" and http_status(e.value) == 400


def test_unknown_channel_is_404(kv, name):
    with pytest.raises(ClientError) as e:
        kv.get_signaling_channel_endpoint(
            ChannelARN=f"arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1712136149494",
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": "MASTER"})
    assert error_code(e.value) == "ResourceNotFoundException" and http_status(e.value) == 404


def test_the_https_endpoint_serves_the_signaling_api(server, kv, arn):
    """The HTTPS endpoint really is this server: kinesis-video-signaling works against it."""
    https = endpoints(kv, arn, Protocols=["HTTPS"], Role="VIEWER")["HTTPS"]
    assert requests.get(https + "/health", timeout=5).status_code == 200
    sig = server.client(service="kinesis-video-signaling", endpoint_url=https)
    out = sig.get_ice_server_config(ChannelARN=arn, ClientId="viewer-1")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(out["IceServerList"], list)
