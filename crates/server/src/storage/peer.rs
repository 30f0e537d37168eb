//! One storage session's WebRTC peer, on str0m (sans-I/O: this loop owns the sockets and the
//! timers, str0m does ICE, DTLS, SRTP, RTCP and depacketization).
//!
//! The peer is the offerer, as AWS's storage session is: one H.264 video and one Opus audio
//! m-line, both `recvonly` (it records; it sends nothing), offered to the master as an
//! SDP_OFFER from its own ClientId, with its host candidates also trickled as ICE_CANDIDATEs.
//! Each depacketized frame (`Event::MediaData`) becomes a [`Sample`] pushed into the sink
//! opened for the channel's stream. Keyframes are requested (PLI, else FIR) when media starts
//! and every [`KEYFRAME_INTERVAL`], so fragments start on a keyframe and stay bounded. Every
//! `check_interval` the loop renews its claim and asks [`SessionLimits::check`] whether to end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kvs_core::app::Application;
use kvs_core::ids::ResourceArn;
use kvs_core::media::{RecordingTarget, Sample, SampleSink, TrackKind};
use kvs_core::relay::{Action, ClientMessage, Event, Registration};
use kvs_core::storage_session::{EndReason, SessionFacts, SessionState};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::{signal, StorageSessions};

/// How often a keyframe is asked for while media flows.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// Datagrams waiting between the socket readers and the loop. Overflow policy: the newest is
/// dropped (UDP media tolerates loss; RTCP feedback repairs video).
const DATAGRAM_QUEUE: usize = 1024;
/// Remote candidates kept until the answer arrives. Overflow policy: the newest is dropped.
const EARLY_CANDIDATES: usize = 64;

pub(super) struct PeerCtx {
    pub app: Arc<Application>,
    pub sessions: Arc<StorageSessions>,
    pub recording: Arc<dyn RecordingTarget>,
    pub reg: Registration,
    pub rx: mpsc::Receiver<Event>,
    pub stop: Arc<Notify>,
    pub client_id: String,
    pub session_id: String,
    pub channel: ResourceArn,
    pub stream: ResourceArn,
}

/// Aborts a socket reader when the session ends.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn reader(
    i: usize,
    socket: Arc<UdpSocket>,
    tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>,
) -> Reader {
    Reader(tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) =
                        tx.try_send((i, from, buf[..n].to_vec()))
                    {
                        return;
                    }
                }
                // ICMP port unreachable and the like surface here on some systems: go on.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }))
}

/// Runs the session to its end, then releases everything it held.
pub(super) async fn run(ctx: PeerCtx) {
    let PeerCtx {
        app,
        sessions,
        recording,
        reg,
        rx,
        stop,
        client_id,
        session_id,
        channel,
        stream,
    } = ctx;
    let reason = match recording.open(&stream, &channel).await {
        Ok(sink) => {
            let mut peer = Peer {
                app: &app,
                sessions: &sessions,
                reg: &reg,
                client_id: &client_id,
                session_id: &session_id,
                channel: channel.as_str(),
                sink,
                first_time: [None, None],
                state: SessionState::Offering,
            };
            let reason = peer.run(rx, stop).await;
            if let Err(e) = peer.sink.finish().await {
                tracing::warn!(error = %e, channel = %channel, "recording not finished cleanly");
            }
            reason
        }
        Err(e) => {
            tracing::warn!(error = %e, channel = %channel, "cannot open the recording");
            EndReason::Stopped
        }
    };
    reg.release().await;
    sessions.ended(channel.as_str(), &session_id, reason).await;
}

struct Peer<'a> {
    app: &'a Arc<Application>,
    sessions: &'a StorageSessions,
    reg: &'a Registration,
    client_id: &'a str,
    session_id: &'a str,
    channel: &'a str,
    sink: Box<dyn SampleSink>,
    /// The first RTP time seen per track (video, audio): media_time counts from it.
    first_time: [Option<u64>; 2],
    state: SessionState,
}

fn track_index(t: TrackKind) -> usize {
    match t {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    }
}

/// Sends one message to the master from the peer's viewer connection.
async fn send(app: &Application, reg: &Registration, action: Action, payload: String) -> bool {
    let msg = ClientMessage {
        action,
        recipient_client_id: None,
        message_payload: payload,
        correlation_id: None,
    };
    match app.relay(reg, msg).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(channel = %reg.channel_arn, error = %e.description, "storage session cannot signal");
            false
        }
    }
}

impl Peer<'_> {
    async fn run(&mut self, mut rx: mpsc::Receiver<Event>, stop: Arc<Notify>) -> EndReason {
        let limits = self.sessions.limits;
        let sockets = match self.sessions.net.bind().await {
            Ok(s) if !s.is_empty() => s,
            Ok(_) | Err(_) => {
                tracing::error!(
                    channel = self.channel,
                    "no UDP socket for the storage session"
                );
                return EndReason::Stopped;
            }
        };
        let (dtx, mut drx) = mpsc::channel(DATAGRAM_QUEUE);
        let _readers: Vec<Reader> = sockets
            .iter()
            .enumerate()
            .map(|(i, (_, s))| reader(i, Arc::clone(s), dtx.clone()))
            .collect();
        drop(dtx);
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_crypto_provider(Arc::clone(&self.sessions.crypto))
            .build(Instant::now());
        let mut locals = Vec::new();
        for (addr, _) in &sockets {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    if let Some(c) = rtc.add_local_candidate(c) {
                        locals.push(c.to_sdp_string());
                    }
                }
                Err(e) => tracing::warn!(%addr, error = %e, "host candidate refused"),
            }
        }
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let Some((offer, pending)) = api.apply() else {
            return EndReason::Stopped;
        };
        let offer = signal::offer_payload(&offer.to_sdp_string());
        if !send(self.app, self.reg, Action::SdpOffer, offer).await {
            return EndReason::Stopped;
        }
        for c in &locals {
            let payload = signal::candidate_payload(c, &video.to_string(), 0);
            send(self.app, self.reg, Action::IceCandidate, payload).await;
        }
        let clock = Arc::clone(self.app.clock());
        let started = clock.now_millis();
        let mut pending: Option<SdpPendingOffer> = Some(pending);
        let mut early: Vec<Candidate> = Vec::new();
        let mut answered = None;
        let mut connected = false;
        let mut failed = false;
        let mut ice_down_since = None;
        let mut last_keyframe_request: Option<Instant> = None;
        let mut tick = tokio::time::interval(limits.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Drain what str0m has to say until it names its next deadline.
            let mut frames = Vec::new();
            let deadline = loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        if let Some((_, s)) = sockets.iter().find(|(a, _)| *a == t.source) {
                            let _ = s.try_send_to(&t.contents, t.destination);
                        }
                    }
                    Ok(Output::Event(e)) => match e {
                        str0m::Event::Connected => {
                            connected = true;
                            self.state = SessionState::Connected;
                        }
                        str0m::Event::IceConnectionStateChange(state) => {
                            use str0m::IceConnectionState as S;
                            match state {
                                S::Disconnected => {
                                    ice_down_since.get_or_insert(clock.now_millis());
                                }
                                S::Connected | S::Completed => ice_down_since = None,
                                _ => {}
                            }
                        }
                        str0m::Event::MediaData(d) => frames.push(d),
                        str0m::Event::Closed => failed = true,
                        _ => {}
                    },
                    Err(e) => {
                        tracing::warn!(channel = self.channel, error = %e, "storage session peer failed");
                        failed = true;
                        break Instant::now() + Duration::from_millis(100);
                    }
                }
            };
            if !rtc.is_alive() {
                failed = true;
            }
            for d in frames {
                self.frame(d, video, audio).await;
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                () = stop.notified() => return EndReason::Superseded,
                Some((i, from, data)) = drx.recv() => {
                    let Some((to, _)) = sockets.get(i) else { continue };
                    if let Ok(r) = Receive::new(Protocol::Udp, from, *to, &data) {
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), r));
                    }
                }
                ev = rx.recv() => match ev {
                    Some(Event::Message(m)) => match m.action {
                        Action::SdpAnswer => {
                            let Some(p) = pending.take() else { continue };
                            let parsed = signal::answer_sdp(&m.payload)
                                .and_then(|s| SdpAnswer::from_sdp_string(&s).ok());
                            let Some(answer) = parsed else {
                                tracing::warn!(channel = self.channel, "unreadable SDP answer");
                                return EndReason::ConnectFailed;
                            };
                            if let Err(e) = rtc.sdp_api().accept_answer(p, answer) {
                                tracing::warn!(channel = self.channel, error = %e, "SDP answer refused");
                                return EndReason::ConnectFailed;
                            }
                            answered = Some(clock.now_millis());
                            self.state = SessionState::Connecting;
                            for c in early.drain(..) {
                                rtc.add_remote_candidate(c);
                            }
                        }
                        Action::IceCandidate => {
                            let c = signal::candidate_line(&m.payload)
                                .and_then(|l| Candidate::from_sdp_string(&l).ok());
                            match c {
                                Some(c) if pending.is_none() => rtc.add_remote_candidate(c),
                                Some(c) if early.len() < EARLY_CANDIDATES => early.push(c),
                                _ => {}
                            }
                        }
                        _ => {}
                    },
                    Some(Event::GoAway { .. } | Event::Close { .. }) | None => {
                        return EndReason::Stopped
                    }
                    Some(Event::ReconnectIceServer) => {}
                },
                () = sleep => {
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                }
                _ = tick.tick() => {
                    let still_claimed = self
                        .sessions
                        .registry
                        .renew(self.channel, self.session_id, self.state, limits.claim_ttl)
                        .await
                        // Redis unreachable: keep going until the claim would have lapsed.
                        .unwrap_or(true);
                    let facts = SessionFacts {
                        started_millis: started,
                        now_millis: clock.now_millis(),
                        answered_millis: answered,
                        connected,
                        failed,
                        ice_down_since_millis: ice_down_since,
                        master_present: self.app.hub().has_master(self.channel).await,
                        still_claimed,
                    };
                    if let Some(reason) = limits.check(&facts) {
                        return reason;
                    }
                    let due = last_keyframe_request.is_none_or(|t| t.elapsed() >= KEYFRAME_INTERVAL);
                    if connected && due {
                        last_keyframe_request = Some(Instant::now());
                        if let Some(mut w) = rtc.writer(video) {
                            let kind = if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                                KeyframeRequestKind::Pli
                            } else {
                                KeyframeRequestKind::Fir
                            };
                            let _ = w.request_keyframe(None, kind);
                        }
                    }
                }
            }
        }
    }

    /// One depacketized frame: counted, timed and handed to the sink.
    async fn frame(&mut self, d: MediaData, video: Mid, audio: Mid) {
        let track = if d.mid == video {
            TrackKind::Video
        } else if d.mid == audio {
            TrackKind::Audio
        } else {
            return;
        };
        let numer = d.time.numer();
        let rate = u128::from(d.time.denom().max(1));
        let first = *self.first_time[track_index(track)].get_or_insert(numer);
        let ticks = u128::from(numer.saturating_sub(first));
        let media_time = Duration::from_nanos((ticks * 1_000_000_000 / rate) as u64);
        let arrival_time = SystemTime::now()
            .checked_sub(d.network_time.elapsed())
            .unwrap_or_else(SystemTime::now);
        // The sender's wall clock from its last RTCP sender report, when it is near this
        // frame (the report's RTP time may not be unwrapped like the frame's).
        let producer_time = d
            .last_sender_info
            .and_then(|si| {
                let diff = i128::from(numer) - i128::from(si.rtp_time.numer());
                let nanos = diff * 1_000_000_000 / rate as i128;
                if nanos.abs() > 10_000_000_000 {
                    return None;
                }
                let by = Duration::from_nanos(nanos.unsigned_abs() as u64);
                if nanos >= 0 {
                    si.ntp_time.checked_add(by)
                } else {
                    si.ntp_time.checked_sub(by)
                }
            })
            .unwrap_or(arrival_time);
        let keyframe = track == TrackKind::Video && d.is_keyframe();
        self.sessions
            .metrics
            .received(track, d.data.len() as u64, keyframe);
        let sample = Sample {
            track,
            media_time,
            producer_time,
            arrival_time,
            keyframe,
            data: d.data.to_vec(),
        };
        if let Err(e) = self.sink.push(sample).await {
            tracing::warn!(channel = self.channel, client = self.client_id, error = %e, "sample not recorded");
        }
    }
}
