//! One storage session's WebRTC peer, on str0m (sans-I/O: this loop owns the sockets and the
//! timers, str0m does ICE, DTLS, SRTP, RTCP and depacketization).
//!
//! The peer is the offerer, as AWS's storage session is: to the master, one H.264 video m-line
//! `recvonly` (it records) and one Opus audio m-line `sendrecv` (it records the master's audio
//! and carries a viewer's back), offered as an SDP_OFFER from its own ClientId, with its host
//! candidates also trickled as ICE_CANDIDATEs. Each depacketized frame from the master becomes
//! a [`Sample`] pushed into the sink opened for the channel's stream. Keyframes are requested
//! (PLI, else FIR) when media starts and every [`KEYFRAME_INTERVAL`], so fragments start on a
//! keyframe and stay bounded. Every `check_interval` the loop renews its claim and asks
//! [`SessionLimits::check`] whether to end.
//!
//! Viewers joined with JoinStorageSessionAsViewer get a leg each ([`super::viewers`]): the
//! peer offers to them as if it were the master (H.264 `sendonly`, Opus `sendrecv`, no
//! senderClientId), forwards the master's frames to them, and forwards one viewer's audio to
//! the master. Their legs are reconciled with the registry's members at every check and as
//! soon as a viewer joins.
//!
//! [`SessionLimits::check`]: kvs_core::storage_session::SessionLimits::check

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kvs_core::app::Application;
use kvs_core::clock::Clock;
use kvs_core::ids::ResourceArn;
use kvs_core::media::{RecordingTarget, Sample, SampleSink, TrackKind};
use kvs_core::relay::{Action, ClientMessage, Event, Registration, Relayed, Role};
use kvs_core::storage_session::{EndReason, SessionFacts, ViewerEnd, ViewerFacts, ViewerRenewal};
use str0m::media::{Direction, MediaData, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::Input;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::leg::{Leg, LegEvent};
use super::viewers::{plan, TalkFloor, ViewerLeg};
use super::{StorageSessions, VIEWER_TTL};

/// How often a keyframe is asked for while media flows.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// The soonest a keyframe is asked for again when a viewer connects or asks for one.
const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(300);
/// Polls in a row while frames are being forwarded before the loop looks at its inputs again
/// (it polls again at once then).
const FLUSH_ROUNDS: usize = 4;
/// Datagrams waiting between the socket readers and the loop. Overflow policy: the newest is
/// dropped (UDP media tolerates loss; RTCP feedback repairs video).
const DATAGRAM_QUEUE: usize = 1024;

pub(super) struct PeerCtx {
    pub app: Arc<Application>,
    pub sessions: Arc<StorageSessions>,
    pub recording: Arc<dyn RecordingTarget>,
    pub reg: Registration,
    pub rx: mpsc::Receiver<Event>,
    pub stop: Arc<Notify>,
    /// Woken when a viewer joined the channel's session.
    pub joined: Arc<Notify>,
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
        joined,
        client_id,
        session_id,
        channel,
        stream,
    } = ctx;
    let reason = match recording.open(&stream, &channel).await {
        Ok(sink) => {
            let mut peer = Peer {
                clock: Arc::clone(app.clock()),
                app: &app,
                sessions: &sessions,
                reg: &reg,
                client_id: &client_id,
                session_id: &session_id,
                channel: channel.as_str(),
                sink,
                first_time: [None, None],
                viewers: Vec::new(),
                floor: TalkFloor::default(),
                last_keyframe_request: None,
            };
            let reason = peer.run(rx, stop, joined).await;
            for v in std::mem::take(&mut peer.viewers) {
                sessions.metrics.viewer_leg_ended(ViewerEnd::SessionEnded);
                tracing::info!(channel = %channel, viewer = v.client_id, "viewer leg ended with the session");
            }
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
    clock: Arc<dyn Clock>,
    sessions: &'a StorageSessions,
    reg: &'a Registration,
    client_id: &'a str,
    session_id: &'a str,
    channel: &'a str,
    sink: Box<dyn SampleSink>,
    /// The first RTP time seen per track (video, audio): media_time counts from it.
    first_time: [Option<u64>; 2],
    viewers: Vec<ViewerLeg>,
    floor: TalkFloor,
    last_keyframe_request: Option<Instant>,
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

type Sockets = Vec<(SocketAddr, Arc<UdpSocket>)>;

impl Peer<'_> {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Event>,
        stop: Arc<Notify>,
        joined: Arc<Notify>,
    ) -> EndReason {
        let limits = self.sessions.limits;
        let sockets: Sockets = match self.sessions.net.bind().await {
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
        let crypto = &self.sessions.crypto;
        let Some((mut master, offer)) =
            Leg::offer(crypto, &sockets, Direction::RecvOnly, Direction::SendRecv)
        else {
            return EndReason::Stopped;
        };
        if !send(self.app, self.reg, Action::SdpOffer, offer.sdp).await {
            return EndReason::Stopped;
        }
        for c in offer.candidates {
            send(self.app, self.reg, Action::IceCandidate, c).await;
        }
        let started = self.clock.now_millis();
        let mut tick = tokio::time::interval(limits.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.poll(&mut master, &sockets).await;
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                () = stop.notified() => return EndReason::Superseded,
                Some((i, from, data)) = drx.recv() => {
                    let Some((to, _)) = sockets.get(i) else { continue };
                    let Ok(r) = Receive::new(Protocol::Udp, from, *to, &data) else { continue };
                    let input = Input::Receive(Instant::now(), r);
                    if master.accepts(&input) {
                        master.input(input);
                    } else if let Some(v) = self.viewers.iter_mut().find(|v| v.leg.accepts(&input)) {
                        v.leg.input(input);
                    }
                }
                ev = rx.recv() => match ev {
                    Some(Event::Message(m)) => {
                        if let Some(reason) = self.signal(&mut master, m).await {
                            return reason;
                        }
                    }
                    Some(Event::GoAway { .. } | Event::Close { .. }) | None => {
                        return EndReason::Stopped
                    }
                    Some(Event::ReconnectIceServer) => {}
                },
                () = sleep => {
                    let now = Instant::now();
                    master.input(Input::Timeout(now));
                    for v in &mut self.viewers {
                        v.leg.input(Input::Timeout(now));
                    }
                }
                () = joined.notified() => self.reconcile(&sockets).await,
                _ = tick.tick() => {
                    let still_claimed = self
                        .sessions
                        .registry
                        .renew(self.channel, self.session_id, master.state(), limits.claim_ttl)
                        .await
                        // Redis unreachable: keep going until the claim would have lapsed.
                        .unwrap_or(true);
                    let facts = SessionFacts {
                        started_millis: started,
                        now_millis: self.clock.now_millis(),
                        answered_millis: master.answered_millis,
                        connected: master.connected,
                        failed: master.failed,
                        ice_down_since_millis: master.ice_down_since_millis,
                        master_present: self.app.hub().has_master(self.channel).await,
                        still_claimed,
                    };
                    if let Some(reason) = limits.check(&facts) {
                        return reason;
                    }
                    self.check_viewers().await;
                    self.reconcile(&sockets).await;
                    if master.connected {
                        self.keyframe(&mut master, KEYFRAME_INTERVAL);
                    }
                }
            }
        }
    }

    /// Polls every leg until str0m names its next deadline, and acts on what they report:
    /// the master's frames recorded and forwarded to the viewers, the talking viewer's audio
    /// forwarded to the master, keyframes asked for; again while something was forwarded, so
    /// it goes out at once and no event is left unread. The earliest deadline.
    async fn poll(&mut self, master: &mut Leg, sockets: &Sockets) -> Instant {
        for _ in 0..FLUSH_ROUNDS {
            let (deadline, wrote) = self.poll_once(master, sockets).await;
            if !wrote {
                return deadline;
            }
            // What was forwarded goes out on the next poll, now (which may report more).
        }
        Instant::now()
    }

    /// One poll of every leg, every event acted on; whether anything was forwarded.
    async fn poll_once(&mut self, master: &mut Leg, sockets: &Sockets) -> (Instant, bool) {
        let now_millis = self.clock.now_millis();
        let mut events = Vec::new();
        let mut deadline = master.poll(sockets, now_millis, &mut events);
        let mut wrote = false;
        let mut want_keyframe = false;
        let mut frames = Vec::new();
        for e in events {
            if let LegEvent::Media(d) = e {
                wrote |= self.forward_to_viewers(&d, master);
                frames.push(d);
            }
        }
        let now = Instant::now();
        for v in &mut self.viewers {
            let mut events = Vec::new();
            deadline = deadline.min(v.leg.poll(sockets, now_millis, &mut events));
            for e in events {
                match e {
                    LegEvent::Media(d) if d.mid == v.leg.audio => {
                        if self.floor.speak(&v.client_id, now) {
                            wrote |= master.forward(&d, MediaKind::Audio);
                        }
                    }
                    LegEvent::Media(_) => {}
                    LegEvent::Connected => {
                        tracing::info!(
                            channel = self.channel,
                            viewer = v.client_id,
                            "viewer leg connected"
                        );
                        want_keyframe = true;
                    }
                    LegEvent::KeyframeRequest => want_keyframe = true,
                }
            }
        }
        if want_keyframe {
            self.keyframe(master, KEYFRAME_MIN_GAP);
        }
        for d in frames {
            self.frame(*d, master).await;
        }
        (deadline, wrote)
    }

    /// One master frame to every connected viewer leg; video only from a keyframe on.
    fn forward_to_viewers(&mut self, d: &MediaData, master: &Leg) -> bool {
        let kind = if d.mid == master.video {
            MediaKind::Video
        } else if d.mid == master.audio {
            MediaKind::Audio
        } else {
            return false;
        };
        let mut wrote = false;
        for v in &mut self.viewers {
            if kind == MediaKind::Video && !v.video_started {
                if !d.is_keyframe() {
                    continue;
                }
                v.video_started = v.leg.connected;
            }
            wrote |= v.leg.forward(d, kind);
        }
        wrote
    }

    /// Asks the master for a keyframe unless one was asked for less than `gap` ago.
    fn keyframe(&mut self, master: &mut Leg, gap: Duration) {
        if self
            .last_keyframe_request
            .is_none_or(|t| t.elapsed() >= gap)
            && master.request_keyframe()
        {
            self.last_keyframe_request = Some(Instant::now());
        }
    }

    /// A signaling message for the peer: from the master (no sender) or from a joined viewer
    /// (redirected to the peer, with its ClientId). The session's end reason, if it must end.
    async fn signal(&mut self, master: &mut Leg, m: Relayed) -> Option<EndReason> {
        let now = self.clock.now_millis();
        let Some(sender) = m.sender else {
            match m.action {
                Action::SdpAnswer => {
                    if let Err(e) = master.answer(&m.payload, now) {
                        tracing::warn!(
                            channel = self.channel,
                            error = e.0,
                            "the master's answer refused"
                        );
                        return Some(EndReason::ConnectFailed);
                    }
                }
                Action::IceCandidate => master.candidate(&m.payload),
                _ => {}
            }
            return None;
        };
        let i = self.viewers.iter().rposition(|v| v.client_id == sender)?;
        let leg = &mut self.viewers[i].leg;
        match m.action {
            Action::SdpAnswer => {
                if let Err(e) = leg.answer(&m.payload, now) {
                    tracing::warn!(
                        channel = self.channel,
                        viewer = sender,
                        error = e.0,
                        "a viewer's answer refused"
                    );
                    self.end_viewer(i, ViewerEnd::ConnectFailed).await;
                }
            }
            Action::IceCandidate => leg.candidate(&m.payload),
            _ => {}
        }
        None
    }

    /// Ends the legs the rules end (the viewer gone, no answer, no connection).
    async fn check_viewers(&mut self) {
        let hub = self.app.hub();
        let mut ends = Vec::new();
        for (i, v) in self.viewers.iter().enumerate() {
            let present = hub
                .is_connected(self.channel, &Role::Viewer(v.client_id.clone()))
                .await
                // Presence unreachable: the leg's own connection state decides meanwhile.
                .unwrap_or(true);
            let facts = ViewerFacts {
                offered_millis: v.offered_millis,
                now_millis: self.clock.now_millis(),
                answered_millis: v.leg.answered_millis,
                connected: v.leg.connected,
                failed: v.leg.failed,
                ice_down_since_millis: v.leg.ice_down_since_millis,
                viewer_present: present,
            };
            if let Some(reason) = self.sessions.limits.check_viewer(&facts) {
                ends.push((i, reason));
            }
        }
        for (i, reason) in ends.into_iter().rev() {
            self.end_viewer(i, reason).await;
        }
    }

    /// Renews the legs' memberships and matches the legs to the members: offers to the new,
    /// ends the replaced and the gone.
    async fn reconcile(&mut self, sockets: &Sockets) {
        let renewals: Vec<ViewerRenewal> = self
            .viewers
            .iter()
            .map(|v| ViewerRenewal {
                client_id: v.client_id.clone(),
                seq: v.seq,
                state: v.leg.state(),
            })
            .collect();
        let registry = &self.sessions.registry;
        let members = match registry
            .renew_viewers(self.channel, &renewals, VIEWER_TTL)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(channel = self.channel, error = %e, "viewer memberships not renewed");
                return;
            }
        };
        let legs: Vec<(&str, u64)> = self
            .viewers
            .iter()
            .map(|v| (v.client_id.as_str(), v.seq))
            .collect();
        let plan = plan(&legs, &members);
        for (i, reason) in plan.end.into_iter().rev() {
            self.end_viewer(i, reason).await;
        }
        for (client, seq) in plan.start {
            self.offer_viewer(client, seq, sockets).await;
        }
    }

    /// Offers a leg to member `client` (join `seq`): its messages redirected to the peer, then
    /// the offer and the candidates sent to it as the master's are (no sender).
    async fn offer_viewer(&mut self, client: String, seq: u64, sockets: &Sockets) {
        let hub = self.app.hub();
        match hub
            .redirect_viewer(self.channel, &client, Some(self.client_id))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Not connected (any more): its place is free again.
                let _ = self
                    .sessions
                    .registry
                    .leave_viewer(self.channel, &client, seq)
                    .await;
                return;
            }
            Err(e) => {
                tracing::warn!(channel = self.channel, viewer = client, error = %e.description, "viewer not redirected; retried at the next check");
                return;
            }
        }
        let crypto = &self.sessions.crypto;
        let Some((leg, offer)) =
            Leg::offer(crypto, sockets, Direction::SendOnly, Direction::SendRecv)
        else {
            return;
        };
        let to = Role::Viewer(client.clone());
        for (action, payload) in std::iter::once((Action::SdpOffer, offer.sdp)).chain(
            offer
                .candidates
                .into_iter()
                .map(|c| (Action::IceCandidate, c)),
        ) {
            let message = Relayed {
                action,
                sender: None,
                payload,
            };
            if let Err(e) = hub.route(self.channel, to.clone(), message, None).await {
                tracing::warn!(channel = self.channel, viewer = client, error = %e.description, "offer to a viewer not sent");
            }
        }
        tracing::info!(
            channel = self.channel,
            viewer = client,
            seq,
            "viewer leg offered"
        );
        self.sessions.metrics.viewer_leg_started();
        self.viewers.push(ViewerLeg {
            client_id: client,
            seq,
            leg,
            offered_millis: self.clock.now_millis(),
            video_started: false,
        });
    }

    /// Ends leg `i`; a failed or abandoned one frees its place (and, failed, the viewer talks
    /// to the master again until it joins anew).
    async fn end_viewer(&mut self, i: usize, reason: ViewerEnd) {
        if i >= self.viewers.len() {
            return;
        }
        let v = self.viewers.remove(i);
        self.floor.release(&v.client_id);
        self.sessions.metrics.viewer_leg_ended(reason);
        tracing::info!(
            channel = self.channel,
            viewer = v.client_id,
            seq = v.seq,
            reason = reason.as_str(),
            "viewer leg ended"
        );
        if !reason.ends_membership() {
            return;
        }
        let registry = &self.sessions.registry;
        if let Err(e) = registry
            .leave_viewer(self.channel, &v.client_id, v.seq)
            .await
        {
            tracing::warn!(channel = self.channel, error = %e, "viewer membership not ended; it lapses");
        }
        if reason != ViewerEnd::Left {
            let _ = self
                .app
                .hub()
                .redirect_viewer(self.channel, &v.client_id, None)
                .await;
        }
    }

    /// One depacketized frame: counted, timed and handed to the sink.
    async fn frame(&mut self, d: MediaData, master: &Leg) {
        let track = if d.mid == master.video {
            TrackKind::Video
        } else if d.mid == master.audio {
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
