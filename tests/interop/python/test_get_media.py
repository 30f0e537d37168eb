"""GetMedia through boto3's kinesis-video-media client (issue 15; docs/media-storage.md
"GetMedia"), on the endpoint GetDataEndpoint gives: the error paths with their exact codes,
statuses and messages, and a stream with nothing recorded (an empty video/webm body once the
idle time has passed). Recorded media read back and probed with ffprobe is tested in
crates/server/tests/get_media.rs, where the test can push samples into the recorder."""
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from kvs_harness import error_code, http_status


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def stream(kv):
    name = uid("gm")
    arn = kv.create_stream(StreamName=name, DataRetentionInHours=1)["StreamARN"]
    return name, arn


@pytest.fixture(scope="module")
def media(server, kv, stream):
    endpoint = kv.get_data_endpoint(StreamName=stream[0], APIName="GET_MEDIA")["DataEndpoint"]
    assert endpoint == server.url
    return server.client(service="kinesis-video-media", endpoint_url=endpoint)


def refused(code, status, fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert error_code(e.value) == code, e.value.response
    assert http_status(e.value) == status
    return e.value.response["Error"]["Message"]


def test_a_missing_stream_is_not_found(media):
    msg = refused("ResourceNotFoundException", 404, media.get_media, StreamName=uid("none"),
                  StartSelector={"StartSelectorType": "EARLIEST"})
    assert msg == "The requested stream is not found or not active."
    refused("ResourceNotFoundException", 404, media.get_media,
            StreamARN="arn:aws:kinesisvideo:us-west-2:111122223333:stream/none/1",
            StartSelector={"StartSelectorType": "NOW"})


def test_a_selector_outside_the_enum_is_invalid(media, stream):
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=stream[0],
                  StartSelector={"StartSelectorType": "LATEST"})
    assert msg == ("1 validation error detected: Value 'LATEST' at 'startSelector.startSelectorType' "
                   "failed to satisfy constraint: Member must satisfy enum value set: [FRAGMENT_NUMBER, "
                   "SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN]")


def test_selectors_need_their_members(media, stream):
    name = stream[0]
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=name,
                  StartSelector={"StartSelectorType": "FRAGMENT_NUMBER"})
    assert msg == "AfterFragmentNumber is required when StartSelectorType is FRAGMENT_NUMBER."
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=name,
                  StartSelector={"StartSelectorType": "SERVER_TIMESTAMP"})
    assert msg == "StartTimestamp is required when StartSelectorType is SERVER_TIMESTAMP."
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=name,
                  StartSelector={"StartSelectorType": "CONTINUATION_TOKEN"})
    assert msg == "ContinuationToken is required when StartSelectorType is CONTINUATION_TOKEN."
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=name,
                  StartSelector={"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12x"})
    assert "'startSelector.afterFragmentNumber'" in msg and "^[0-9]+$" in msg
    msg = refused("InvalidArgumentException", 400, media.get_media, StreamName=name, StreamARN=stream[1],
                  StartSelector={"StartSelectorType": "NOW"})
    assert msg == "Specify either StreamName or StreamARN, not both."


def test_an_empty_stream_answers_an_empty_body(media, stream):
    time.sleep(1.1)  # the calls above count toward 5 a second per stream
    started = time.monotonic()
    out = media.get_media(StreamARN=stream[1], StartSelector={"StartSelectorType": "EARLIEST"})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["ContentType"] == "video/webm"
    assert out["Payload"].read() == b""
    # Nothing is being recorded: the body ends after the idle time (3 s), not at once.
    assert time.monotonic() - started >= 2.5
