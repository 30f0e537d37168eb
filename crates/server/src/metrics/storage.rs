//! Storage sessions (issue 15, docs/metrics.md "Storage sessions"): sessions started and ended
//! by reason, sessions running on this node, and the media their peers received per track.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use kvs_core::media::TrackKind;
use kvs_core::storage_session::{EndReason, ViewerEnd};

use super::declare;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackLabel {
    pub track: &'static str,
}

fn track_name(t: TrackKind) -> &'static str {
    match t {
        TrackKind::Video => "video",
        TrackKind::Audio => "audio",
    }
}

#[derive(Debug, Default)]
pub struct StorageMetrics {
    started: Counter,
    ended: Family<ReasonLabel, Counter>,
    active: Gauge,
    samples: Family<TrackLabel, Counter>,
    bytes: Family<TrackLabel, Counter>,
    keyframes: Counter,
    viewers_joined: Counter,
    viewers_active: Gauge,
    viewers_ended: Family<ReasonLabel, Counter>,
}

impl StorageMetrics {
    pub fn new() -> Self {
        let m = Self::default();
        // Every label from the start, so a fresh node shows zeros.
        for r in EndReason::ALL {
            let _ = m.ended.get_or_create(&ReasonLabel { reason: r.as_str() });
        }
        for r in ViewerEnd::ALL {
            let _ = m
                .viewers_ended
                .get_or_create(&ReasonLabel { reason: r.as_str() });
        }
        for t in [TrackKind::Video, TrackKind::Audio] {
            let l = TrackLabel {
                track: track_name(t),
            };
            let _ = m.samples.get_or_create(&l);
            let _ = m.bytes.get_or_create(&l);
        }
        m
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        declare(
            registry,
            "kvs_storage_sessions_started",
            "Storage sessions (JoinStorageSession) started on this node",
            self.started.clone(),
        );
        declare(
            registry,
            "kvs_storage_sessions_ended",
            "Storage sessions ended on this node, by reason",
            self.ended.clone(),
        );
        declare(
            registry,
            "kvs_storage_sessions_active",
            "Storage-session peers running on this node now",
            self.active.clone(),
        );
        declare(
            registry,
            "kvs_storage_samples_received",
            "Frames the storage-session peers received and handed to the recording, by track",
            self.samples.clone(),
        );
        declare(
            registry,
            "kvs_storage_received_bytes",
            "Bytes of depacketized media the storage-session peers received, by track",
            self.bytes.clone(),
        );
        declare(
            registry,
            "kvs_storage_video_keyframes",
            "H.264 keyframes (IDR access units) the storage-session peers received",
            self.keyframes.clone(),
        );
        declare(
            registry,
            "kvs_storage_viewers_joined",
            "JoinStorageSessionAsViewer calls this node accepted",
            self.viewers_joined.clone(),
        );
        declare(
            registry,
            "kvs_storage_viewers_active",
            "Viewer legs (viewers joined to a storage session) the peers on this node serve now",
            self.viewers_active.clone(),
        );
        declare(
            registry,
            "kvs_storage_viewers_ended",
            "Viewer legs ended on this node, by reason",
            self.viewers_ended.clone(),
        );
    }

    pub fn viewer_joined(&self) {
        self.viewers_joined.inc();
    }

    pub fn viewer_leg_started(&self) {
        self.viewers_active.inc();
    }

    /// Viewer legs ended with `reason` so far (tests, logs).
    pub fn viewer_ended_with(&self, reason: ViewerEnd) -> u64 {
        self.viewers_ended
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Viewer legs served now.
    pub fn viewers_active(&self) -> i64 {
        self.viewers_active.get()
    }

    pub fn viewer_leg_ended(&self, reason: ViewerEnd) {
        self.viewers_ended
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
        self.viewers_active.dec();
    }

    pub fn started(&self) {
        self.started.inc();
        self.active.inc();
    }

    pub fn ended(&self, reason: EndReason) {
        self.ended
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
        self.active.dec();
    }

    /// Sessions ended with `reason` so far (tests, logs).
    pub fn ended_with(&self, reason: EndReason) -> u64 {
        self.ended
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Sessions running now.
    pub fn active(&self) -> i64 {
        self.active.get()
    }

    pub fn received(&self, track: TrackKind, bytes: u64, keyframe: bool) {
        let l = TrackLabel {
            track: track_name(track),
        };
        self.samples.get_or_create(&l).inc();
        self.bytes.get_or_create(&l).inc_by(bytes);
        if keyframe {
            self.keyframes.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_media_are_counted() {
        let m = StorageMetrics::new();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.started();
        m.started();
        m.ended(EndReason::MasterLeft);
        m.received(TrackKind::Video, 1000, true);
        m.received(TrackKind::Audio, 80, false);
        m.viewer_joined();
        m.viewer_leg_started();
        m.viewer_leg_started();
        m.viewer_leg_ended(ViewerEnd::Replaced);
        let text = super::super::render(&registry);
        for line in [
            "kvs_storage_sessions_started_total 2",
            "kvs_storage_sessions_active 1",
            r#"kvs_storage_sessions_ended_total{reason="master_left"} 1"#,
            r#"kvs_storage_sessions_ended_total{reason="superseded"} 0"#,
            r#"kvs_storage_samples_received_total{track="video"} 1"#,
            r#"kvs_storage_received_bytes_total{track="audio"} 80"#,
            "kvs_storage_video_keyframes_total 1",
            "kvs_storage_viewers_joined_total 1",
            "kvs_storage_viewers_active 1",
            r#"kvs_storage_viewers_ended_total{reason="replaced"} 1"#,
            r#"kvs_storage_viewers_ended_total{reason="left"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
