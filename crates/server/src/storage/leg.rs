//! One str0m peer connection of a storage session: the leg to the master (it records what the
//! master sends) or to one viewer joined with JoinStorageSessionAsViewer (it forwards the
//! master's media). Every leg is the offerer, with one H.264 video and one Opus audio m-line,
//! and shares the session's UDP sockets (str0m's `Rtc::accepts` picks the leg a datagram is
//! for, by ICE username or remote address). The leg keeps what the session rules need
//! (answered, connected, failed, ICE down since) and hands back what the peer acts on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_core::storage_session::SessionState;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::crypto::CryptoProvider;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Candidate, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::signal;

/// Remote candidates kept until the answer arrives. Overflow policy: the newest is dropped.
const EARLY_CANDIDATES: usize = 64;

/// The session's sockets: each local address and its socket.
pub type Sockets = [(SocketAddr, Arc<UdpSocket>)];

/// What a leg reports from one poll.
pub enum LegEvent {
    /// A depacketized frame from the remote peer.
    Media(Box<MediaData>),
    /// The remote peer asks for a video keyframe (PLI or FIR).
    KeyframeRequest,
    /// ICE and DTLS completed.
    Connected,
}

/// A leg's offer, ready to signal: the offer payload and one ICE_CANDIDATE payload per host
/// candidate.
pub struct Offer {
    pub sdp: String,
    pub candidates: Vec<String>,
}

/// The answer was unreadable or refused.
#[derive(Debug)]
pub struct BadAnswer(pub String);

pub struct Leg {
    rtc: Rtc,
    pub video: Mid,
    pub audio: Mid,
    pending: Option<SdpPendingOffer>,
    early: Vec<Candidate>,
    pub answered_millis: Option<u64>,
    pub connected: bool,
    pub failed: bool,
    pub ice_down_since_millis: Option<u64>,
}

impl Leg {
    /// A new leg offering `video` and `audio` in these directions, with a host candidate per
    /// socket. `None` when str0m cannot make an offer.
    pub fn offer(
        crypto: &Arc<CryptoProvider>,
        sockets: &Sockets,
        video: Direction,
        audio: Direction,
    ) -> Option<(Self, Offer)> {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_crypto_provider(Arc::clone(crypto))
            .build(Instant::now());
        let mut locals = Vec::new();
        for (addr, _) in sockets {
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
        let video = api.add_media(MediaKind::Video, video, None, None, None);
        let audio = api.add_media(MediaKind::Audio, audio, None, None, None);
        let (offer, pending) = api.apply()?;
        let mid = video.to_string();
        let offer = Offer {
            sdp: signal::offer_payload(&offer.to_sdp_string()),
            candidates: locals
                .iter()
                .map(|c| signal::candidate_payload(c, &mid, 0))
                .collect(),
        };
        let leg = Self {
            rtc,
            video,
            audio,
            pending: Some(pending),
            early: Vec::new(),
            answered_millis: None,
            connected: false,
            failed: false,
            ice_down_since_millis: None,
        };
        Some((leg, offer))
    }

    /// The remote peer's SDP_ANSWER (payload as signaled). A second answer is ignored.
    pub fn answer(&mut self, payload: &str, now_millis: u64) -> Result<(), BadAnswer> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let answer = signal::answer_sdp(payload)
            .and_then(|s| SdpAnswer::from_sdp_string(&s).ok())
            .ok_or_else(|| BadAnswer("unreadable SDP answer".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| BadAnswer(e.to_string()))?;
        self.answered_millis = Some(now_millis);
        for c in self.early.drain(..) {
            self.rtc.add_remote_candidate(c);
        }
        Ok(())
    }

    /// The remote peer's ICE_CANDIDATE (payload as signaled); kept until the answer if early.
    pub fn candidate(&mut self, payload: &str) {
        let c = signal::candidate_line(payload).and_then(|l| Candidate::from_sdp_string(&l).ok());
        match c {
            Some(c) if self.pending.is_none() => self.rtc.add_remote_candidate(c),
            Some(c) if self.early.len() < EARLY_CANDIDATES => self.early.push(c),
            _ => {}
        }
    }

    /// The leg's state for the registry.
    pub fn state(&self) -> SessionState {
        if self.connected {
            SessionState::Connected
        } else if self.answered_millis.is_some() {
            SessionState::Connecting
        } else {
            SessionState::Offering
        }
    }

    /// Whether datagram `input` is this leg's.
    pub fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
    }

    pub fn input(&mut self, input: Input) {
        let _ = self.rtc.handle_input(input);
    }

    /// Sends what str0m has to send and collects what it reports, until it names its next
    /// deadline (returned).
    pub fn poll(&mut self, sockets: &Sockets, now_millis: u64, out: &mut Vec<LegEvent>) -> Instant {
        let deadline = loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    if let Some((_, s)) = sockets.iter().find(|(a, _)| *a == t.source) {
                        let _ = s.try_send_to(&t.contents, t.destination);
                    }
                }
                Ok(Output::Event(e)) => match e {
                    str0m::Event::Connected => {
                        self.connected = true;
                        out.push(LegEvent::Connected);
                    }
                    str0m::Event::IceConnectionStateChange(state) => {
                        use str0m::IceConnectionState as S;
                        match state {
                            S::Disconnected => {
                                self.ice_down_since_millis.get_or_insert(now_millis);
                            }
                            S::Connected | S::Completed => self.ice_down_since_millis = None,
                            _ => {}
                        }
                    }
                    str0m::Event::MediaData(d) => out.push(LegEvent::Media(Box::new(d))),
                    str0m::Event::KeyframeRequest(_) => out.push(LegEvent::KeyframeRequest),
                    str0m::Event::Closed => self.failed = true,
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!(error = %e, "storage-session peer connection failed");
                    self.failed = true;
                    break Instant::now() + Duration::from_millis(100);
                }
            }
        };
        if !self.rtc.is_alive() {
            self.failed = true;
        }
        deadline
    }

    /// Asks the remote peer for a video keyframe (PLI, else FIR); `false` when it cannot be
    /// asked (not connected, or not receiving video).
    pub fn request_keyframe(&mut self) -> bool {
        let Some(mut w) = self.rtc.writer(self.video) else {
            return false;
        };
        let kind = if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else {
            KeyframeRequestKind::Fir
        };
        w.request_keyframe(None, kind).is_ok()
    }

    /// Sends frame `d` (received on another leg) on this leg's m-line of the same kind, in the
    /// payload type negotiated here for its codec. `false` when it cannot be sent now.
    pub fn forward(&mut self, d: &MediaData, kind: MediaKind) -> bool {
        if !self.connected {
            return false;
        }
        let mid = match kind {
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
        };
        let Some(w) = self.rtc.writer(mid) else {
            return false;
        };
        let codec = d.params.spec().codec;
        let pt = w.match_params(d.params).or_else(|| {
            w.payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
        });
        match pt {
            Some(pt) => w
                .write(pt, d.network_time, d.time, Arc::clone(&d.data))
                .is_ok(),
            None => false,
        }
    }
}
