//! When a running storage session ends (docs/webrtc-ingestion.md "Limits"). A pure decision
//! over what the session's node observed, so the rules are tested with a stepped clock and no
//! WebRTC: the peer's loop gathers [`SessionFacts`] on every check and stops on the first
//! [`EndReason`].

use std::time::Duration;

/// The documented limits of a storage session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// How long the master has to answer the offer.
    pub answer_timeout: Duration,
    /// How long ICE and DTLS may take once the answer arrived.
    pub connect_timeout: Duration,
    /// How long a connected session may stay with ICE disconnected (the master's network went
    /// away while its signaling connection stayed) before it ends.
    pub ice_down_timeout: Duration,
    /// The longest a session runs; the master's SDK joins again to go on recording.
    pub max_duration: Duration,
    /// How long the claim lasts without renewal (a dead node's claim lapses after this).
    pub claim_ttl: Duration,
    /// How often the node checks the rules and renews its claim.
    pub check_interval: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            answer_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            ice_down_timeout: Duration::from_secs(10),
            max_duration: Duration::from_secs(60 * 60),
            claim_ttl: Duration::from_secs(10),
            check_interval: Duration::from_secs(1),
        }
    }
}

/// Why a storage session ended; also the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// A newer JoinStorageSession for the channel took over.
    Superseded,
    /// The master left the signaling channel.
    MasterLeft,
    /// No answer within `answer_timeout`.
    NoAnswer,
    /// ICE/DTLS did not complete within `connect_timeout`, or the connection failed.
    ConnectFailed,
    /// `max_duration` reached.
    MaxDuration,
    /// The channel, its stream or the recording target went away, or the node is stopping.
    Stopped,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        Self::Superseded,
        Self::MasterLeft,
        Self::NoAnswer,
        Self::ConnectFailed,
        Self::MaxDuration,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Superseded => "superseded",
            Self::MasterLeft => "master_left",
            Self::NoAnswer => "no_answer",
            Self::ConnectFailed => "connect_failed",
            Self::MaxDuration => "max_duration",
            Self::Stopped => "stopped",
        }
    }
}

/// What the session's node knows at one check (times in ms on the node's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFacts {
    pub started_millis: u64,
    pub now_millis: u64,
    /// When the master's answer arrived.
    pub answered_millis: Option<u64>,
    /// ICE and DTLS completed (and have not failed since).
    pub connected: bool,
    /// The peer connection reported a failure (DTLS closed, the peer gave up).
    pub failed: bool,
    /// Since when ICE reports the connection disconnected, while it does.
    pub ice_down_since_millis: Option<u64>,
    /// A master is connected to the channel, on any node.
    pub master_present: bool,
    /// The registry still holds this session's claim.
    pub still_claimed: bool,
}

impl SessionLimits {
    /// The reason the session must end now, if any. Superseded first: a newer session owns
    /// the channel whatever else is true.
    pub fn check(&self, f: &SessionFacts) -> Option<EndReason> {
        let elapsed = |since: u64| Duration::from_millis(f.now_millis.saturating_sub(since));
        if !f.still_claimed {
            return Some(EndReason::Superseded);
        }
        if !f.master_present {
            return Some(EndReason::MasterLeft);
        }
        if elapsed(f.started_millis) >= self.max_duration {
            return Some(EndReason::MaxDuration);
        }
        let ice_gone = f
            .ice_down_since_millis
            .is_some_and(|since| elapsed(since) >= self.ice_down_timeout);
        if f.failed || ice_gone {
            return Some(EndReason::ConnectFailed);
        }
        match f.answered_millis {
            None if elapsed(f.started_millis) >= self.answer_timeout => Some(EndReason::NoAnswer),
            Some(at) if !f.connected && elapsed(at) >= self.connect_timeout => {
                Some(EndReason::ConnectFailed)
            }
            _ => None,
        }
    }
}

/// Why a viewer's leg of a storage session ended (JoinStorageSessionAsViewer); also the
/// metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewerEnd {
    /// The viewer's signaling connection is gone.
    Left,
    /// The viewer did not answer the peer's offer within `answer_timeout`.
    NoAnswer,
    /// ICE/DTLS did not complete within `connect_timeout`, or the connection failed.
    ConnectFailed,
    /// The same ClientId joined again: a new leg took over.
    Replaced,
    /// The session serving it ended (the viewer's membership stays, for a next session).
    SessionEnded,
}

impl ViewerEnd {
    pub const ALL: [ViewerEnd; 5] = [
        Self::Left,
        Self::NoAnswer,
        Self::ConnectFailed,
        Self::Replaced,
        Self::SessionEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::NoAnswer => "no_answer",
            Self::ConnectFailed => "connect_failed",
            Self::Replaced => "replaced",
            Self::SessionEnded => "session_ended",
        }
    }

    /// Whether the viewer's membership ends with its leg: a leg that failed frees its place
    /// (the viewer joins again to retry); a replaced leg's membership is its successor's, and
    /// a leg ended with its session keeps it for the next session.
    pub fn ends_membership(self) -> bool {
        matches!(self, Self::Left | Self::NoAnswer | Self::ConnectFailed)
    }
}

/// What the session's node knows of one viewer leg at a check (times in ms on the node's
/// clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerFacts {
    pub offered_millis: u64,
    pub now_millis: u64,
    pub answered_millis: Option<u64>,
    pub connected: bool,
    pub failed: bool,
    pub ice_down_since_millis: Option<u64>,
    /// The viewer's signaling connection is up, on any node.
    pub viewer_present: bool,
}

impl SessionLimits {
    /// The reason a viewer leg must end now, if any: the session's own rules for its leg to
    /// the master, the viewer in the master's place (no duration limit: the session has one).
    pub fn check_viewer(&self, f: &ViewerFacts) -> Option<ViewerEnd> {
        let facts = SessionFacts {
            started_millis: f.offered_millis,
            now_millis: f.offered_millis.max(
                f.now_millis
                    .min(f.offered_millis + self.max_duration.as_millis() as u64 - 1),
            ),
            answered_millis: f.answered_millis,
            connected: f.connected,
            failed: f.failed,
            ice_down_since_millis: f.ice_down_since_millis,
            master_present: f.viewer_present,
            still_claimed: true,
        };
        match self.check(&facts)? {
            EndReason::MasterLeft => Some(ViewerEnd::Left),
            EndReason::NoAnswer => Some(ViewerEnd::NoAnswer),
            EndReason::ConnectFailed => Some(ViewerEnd::ConnectFailed),
            // Not reachable with the facts above; a leg never outlives its session anyway.
            EndReason::Superseded | EndReason::MaxDuration | EndReason::Stopped => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SessionFacts {
        SessionFacts {
            started_millis: 1_000,
            now_millis: 1_000,
            answered_millis: None,
            connected: false,
            failed: false,
            ice_down_since_millis: None,
            master_present: true,
            still_claimed: true,
        }
    }

    #[test]
    fn a_fresh_session_runs() {
        assert_eq!(SessionLimits::default().check(&facts()), None);
    }

    #[test]
    fn no_answer_ends_it_at_the_answer_timeout_exactly() {
        let l = SessionLimits::default();
        let mut f = facts();
        f.now_millis = 1_000 + 29_999;
        assert_eq!(l.check(&f), None);
        f.now_millis = 1_000 + 30_000;
        assert_eq!(l.check(&f), Some(EndReason::NoAnswer));
        f.answered_millis = Some(20_000);
        assert_eq!(
            l.check(&f),
            None,
            "answered: the connect timeout runs instead"
        );
        f.now_millis = 50_000;
        assert_eq!(l.check(&f), Some(EndReason::ConnectFailed));
        f.connected = true;
        assert_eq!(l.check(&f), None);
    }

    #[test]
    fn master_leaving_ends_it() {
        let mut f = facts();
        f.connected = true;
        f.answered_millis = Some(1_000);
        f.master_present = false;
        assert_eq!(
            SessionLimits::default().check(&f),
            Some(EndReason::MasterLeft)
        );
    }

    #[test]
    fn superseded_wins_over_everything() {
        let mut f = facts();
        f.master_present = false;
        f.failed = true;
        f.still_claimed = false;
        assert_eq!(
            SessionLimits::default().check(&f),
            Some(EndReason::Superseded)
        );
    }

    #[test]
    fn ice_down_for_the_timeout_ends_a_connected_session() {
        let l = SessionLimits::default();
        let mut f = facts();
        f.answered_millis = Some(1_000);
        f.connected = true;
        f.ice_down_since_millis = Some(5_000);
        f.now_millis = 14_999;
        assert_eq!(l.check(&f), None, "it may come back");
        f.now_millis = 15_000;
        assert_eq!(l.check(&f), Some(EndReason::ConnectFailed));
        f.ice_down_since_millis = None;
        assert_eq!(l.check(&f), None, "it came back");
    }

    #[test]
    fn max_duration_and_failure() {
        let l = SessionLimits::default();
        let mut f = facts();
        f.answered_millis = Some(1_000);
        f.connected = true;
        f.now_millis = 1_000 + 3_600_000;
        assert_eq!(l.check(&f), Some(EndReason::MaxDuration));
        f.now_millis = 2_000;
        f.failed = true;
        assert_eq!(l.check(&f), Some(EndReason::ConnectFailed));
    }

    fn viewer() -> ViewerFacts {
        ViewerFacts {
            offered_millis: 1_000,
            now_millis: 1_000,
            answered_millis: None,
            connected: false,
            failed: false,
            ice_down_since_millis: None,
            viewer_present: true,
        }
    }

    #[test]
    fn viewer_legs_end_like_the_session_in_the_masters_place() {
        let l = SessionLimits::default();
        type Case = (&'static str, fn(&mut ViewerFacts), Option<ViewerEnd>);
        let cases: Vec<Case> = vec![
            ("fresh", |_| {}, None),
            ("gone", |f| f.viewer_present = false, Some(ViewerEnd::Left)),
            ("no answer yet", |f| f.now_millis = 30_999, None),
            (
                "no answer",
                |f| f.now_millis = 31_000,
                Some(ViewerEnd::NoAnswer),
            ),
            (
                "answered, connecting",
                |f| {
                    f.answered_millis = Some(2_000);
                    f.now_millis = 31_999;
                },
                None,
            ),
            (
                "never connected",
                |f| {
                    f.answered_millis = Some(2_000);
                    f.now_millis = 32_000;
                },
                Some(ViewerEnd::ConnectFailed),
            ),
            (
                "failed",
                |f| f.failed = true,
                Some(ViewerEnd::ConnectFailed),
            ),
            (
                "ice down 10 s",
                |f| {
                    f.answered_millis = Some(1_000);
                    f.connected = true;
                    f.ice_down_since_millis = Some(5_000);
                    f.now_millis = 15_000;
                },
                Some(ViewerEnd::ConnectFailed),
            ),
            (
                "connected for two hours",
                |f| {
                    f.answered_millis = Some(1_000);
                    f.connected = true;
                    f.now_millis = 7_200_000;
                },
                None,
            ),
        ];
        for (what, change, want) in cases {
            let mut f = viewer();
            change(&mut f);
            assert_eq!(l.check_viewer(&f), want, "{what}");
        }
        assert_eq!(
            ViewerEnd::ALL.map(ViewerEnd::ends_membership),
            [true, true, true, false, false]
        );
    }
}
