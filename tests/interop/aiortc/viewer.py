"""A KVS viewer on a second WebRTC stack: aiortc (Python), with its signaling written here.

It presigns the ConnectAsViewer URL with botocore (SigV4 query auth, service kinesisvideo),
sends an SDP offer over the signaling WebSocket, applies the master's answer and trickled ICE
candidates, and exchanges one message each way on a data channel. Exit 0 and print the reply
on success.

Usage: viewer.py --arn ARN --wss WSS_ENDPOINT --region R --key AK --secret SK --client-id ID
                 --ice-servers JSON [--ca CA.pem] [--relay-only]

--ca is trusted for the signaling WebSocket and for TURN over TLS (`turns:`): aiortc opens its
TURN TLS connection with the default context, which takes the CA file from SSL_CERT_FILE.
--relay-only: iceTransportPolicy relay; prints the nominated local candidate's type on a second
line.
"""
import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import urllib.parse

import websockets
from aiortc import (RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection,
                    RTCSessionDescription)
from aiortc.sdp import candidate_from_sdp
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def presign(wss, arn, client_id, region, key, secret):
    https = "https://" + wss.split("://", 1)[1].rstrip("/") + "/"
    query = urllib.parse.urlencode({"X-Amz-ChannelARN": arn, "X-Amz-ClientId": client_id},
                                   quote_via=urllib.parse.quote)
    req = AWSRequest(method="GET", url=f"{https}?{query}")
    SigV4QueryAuth(Credentials(key, secret), "kinesisvideo", region, expires=299).add_auth(req)
    return "wss://" + req.url.split("://", 1)[1]


def b64json(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


async def main(a):
    ice = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
           for s in json.loads(a.ice_servers)]
    policy = RTCIceTransportPolicy.RELAY if a.relay_only else RTCIceTransportPolicy.ALL
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, iceTransportPolicy=policy))
    channel = pc.createDataChannel("kvs")
    opened = asyncio.Event()
    reply = asyncio.get_running_loop().create_future()
    channel.on("open", opened.set)
    channel.on("message", lambda m: reply.done() or reply.set_result(m))

    ctx = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
    url = presign(a.wss, a.arn, a.client_id, a.region, a.key, a.secret)
    async with websockets.connect(url, ssl=ctx) as ws:
        await pc.setLocalDescription(await pc.createOffer())
        await ws.send(json.dumps({"action": "SDP_OFFER",
                                  "messagePayload": b64json({"type": "offer", "sdp": pc.localDescription.sdp})}))

        async def pump():
            async for raw in ws:
                msg = json.loads(raw)
                payload = msg.get("messagePayload")
                body = json.loads(base64.b64decode(payload)) if payload else None
                if msg["messageType"] == "SDP_ANSWER":
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
                elif msg["messageType"] == "ICE_CANDIDATE" and body.get("candidate"):
                    c = candidate_from_sdp(body["candidate"].split(":", 1)[1])
                    c.sdpMid = body.get("sdpMid")
                    c.sdpMLineIndex = body.get("sdpMLineIndex")
                    await pc.addIceCandidate(c)

        pump_task = asyncio.create_task(pump())
        try:
            await asyncio.wait_for(opened.wait(), 30)
            channel.send(f"ping from {a.client_id}")
            print(await asyncio.wait_for(reply, 15), flush=True)
            if a.relay_only:
                ice_transport = pc.sctp.transport.transport
                pair = ice_transport._connection._nominated.get(1)
                print(pair.local_candidate.type if pair else "none", flush=True)
        finally:
            pump_task.cancel()
            await pc.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for name in ("arn", "wss", "region", "key", "secret", "client-id", "ice-servers"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--ca")
    p.add_argument("--relay-only", action="store_true")
    args = p.parse_args()
    if args.ca:
        os.environ["SSL_CERT_FILE"] = args.ca
    try:
        asyncio.run(main(args))
    except Exception as e:  # report, with a non-zero exit, for the calling test
        print(f"aiortc viewer failed: {e!r}", file=sys.stderr)
        sys.exit(1)
