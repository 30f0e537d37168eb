//! The viewers of a storage session (JoinStorageSessionAsViewer, docs/webrtc-ingestion.md):
//! which legs the peer serves, given the registry's members ([`plan`]), and which viewer's
//! audio goes to the master ([`TalkFloor`]). Pure rules; the peer's loop applies them.

use std::time::{Duration, Instant};

use kvs_core::storage_session::{ViewerEnd, ViewerRecord};

use super::leg::Leg;

/// How long a viewer's audio may pause before another viewer's is forwarded instead.
pub const FLOOR_HOLD: Duration = Duration::from_millis(500);

/// A leg the peer serves: one join of one viewer.
pub struct ViewerLeg {
    pub client_id: String,
    pub seq: u64,
    pub leg: Leg,
    pub offered_millis: u64,
    /// A keyframe was forwarded: video frames go out from here on (a decoder cannot start
    /// mid-GOP).
    pub video_started: bool,
}

/// What the peer does to match its legs to the registry's members.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Legs to end (by index), and why.
    pub end: Vec<(usize, ViewerEnd)>,
    /// Members to offer a leg to: (client_id, seq).
    pub start: Vec<(String, u64)>,
}

/// Matches the legs (`(client_id, seq)` each) to the live members: a member without a leg
/// gets one; a leg whose ClientId joined again is replaced; a leg whose membership is gone
/// (lapsed, or left on another node) ends as `left`.
pub fn plan(legs: &[(&str, u64)], members: &[ViewerRecord]) -> Plan {
    let mut p = Plan::default();
    for (i, (client, seq)) in legs.iter().enumerate() {
        match members.iter().find(|m| m.client_id == *client) {
            Some(m) if m.seq == *seq => {}
            Some(m) if m.seq > *seq => p.end.push((i, ViewerEnd::Replaced)),
            _ => p.end.push((i, ViewerEnd::Left)),
        }
    }
    for m in members {
        if !legs.iter().any(|(c, s)| *c == m.client_id && *s == m.seq) {
            p.start.push((m.client_id.clone(), m.seq));
        }
    }
    p
}

/// One viewer talks to the master at a time (no mixing): the first whose audio arrives holds
/// the floor while it keeps talking; after [`FLOOR_HOLD`] of silence, or once it leaves, the
/// next one to talk takes it.
#[derive(Debug, Default)]
pub struct TalkFloor {
    holder: Option<(String, Instant)>,
}

impl TalkFloor {
    /// `client` has audio at `now`: whether it goes to the master.
    pub fn speak(&mut self, client: &str, now: Instant) -> bool {
        let free = match &self.holder {
            None => true,
            Some((c, _)) if c == client => true,
            Some((_, last)) => now.saturating_duration_since(*last) >= FLOOR_HOLD,
        };
        if free {
            self.holder = Some((client.to_owned(), now));
        }
        free
    }

    /// `client`'s leg ended.
    pub fn release(&mut self, client: &str) {
        if self.holder.as_ref().is_some_and(|(c, _)| c == client) {
            self.holder = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(client: &str, seq: u64) -> ViewerRecord {
        ViewerRecord {
            client_id: client.into(),
            seq,
            since_millis: 0,
            expires_millis: 30_000,
            state: "WAITING".into(),
        }
    }

    #[test]
    fn plan_starts_replaces_and_ends_legs() {
        type Case = (
            &'static str,
            Vec<(&'static str, u64)>,
            Vec<ViewerRecord>,
            Plan,
        );
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![], Plan::default()),
            (
                "new members",
                vec![],
                vec![member("a", 1), member("b", 2)],
                Plan {
                    end: vec![],
                    start: vec![("a".into(), 1), ("b".into(), 2)],
                },
            ),
            (
                "served",
                vec![("a", 1)],
                vec![member("a", 1)],
                Plan::default(),
            ),
            (
                "rejoined",
                vec![("a", 1), ("b", 2)],
                vec![member("a", 3), member("b", 2)],
                Plan {
                    end: vec![(0, ViewerEnd::Replaced)],
                    start: vec![("a".into(), 3)],
                },
            ),
            (
                "gone",
                vec![("a", 1), ("b", 2)],
                vec![member("b", 2)],
                Plan {
                    end: vec![(0, ViewerEnd::Left)],
                    start: vec![],
                },
            ),
        ];
        for (what, legs, members, want) in cases {
            assert_eq!(plan(&legs, &members), want, "{what}");
        }
    }

    #[test]
    fn the_first_talker_keeps_the_floor_until_it_pauses_or_leaves() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut f = TalkFloor::default();
        assert!(f.speak("a", at(0)));
        assert!(!f.speak("b", at(10)));
        assert!(f.speak("a", at(20)));
        assert!(!f.speak("b", at(519)), "a paused 499 ms");
        assert!(f.speak("b", at(520)), "a paused 500 ms");
        assert!(!f.speak("a", at(530)));
        f.release("a");
        assert!(
            !f.speak("a", at(540)),
            "releasing a non-holder changes nothing"
        );
        f.release("b");
        assert!(f.speak("a", at(550)));
    }
}
