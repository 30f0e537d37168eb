//! Recorded media's counters (`kvs_media_*`, docs/metrics.md), read from the recorder's atomics
//! ([`kvs_media::MediaMetrics`]) and the GetMedia responses open, when a scrape asks.

use std::fmt;
use std::sync::Arc;

use kvs_media::MediaFigures;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::signaling::{counter, gauge, labelled_counter};

/// What a scrape reads: the recorder's counters and GetMedia's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaScrape {
    pub recorder: MediaFigures,
    pub get_media_open: u64,
    pub get_media_total: u64,
}

pub struct MediaCollector {
    read: Box<dyn Fn() -> MediaScrape + Send + Sync>,
}

impl MediaCollector {
    pub fn new(read: impl Fn() -> MediaScrape + Send + Sync + 'static) -> Self {
        Self {
            read: Box::new(read),
        }
    }

    /// Reads `media`'s counters.
    pub fn of(media: Arc<crate::media::Media>) -> Self {
        Self::new(move || media.scrape())
    }
}

impl fmt::Debug for MediaCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaCollector").finish_non_exhaustive()
    }
}

fn to_i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for MediaCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = (self.read)();
        let r = &s.recorder;
        let enc = &mut enc;
        counter(
            enc,
            "kvs_media_sessions_total",
            "Recordings opened (storage sessions writing into a stream)",
            r.sessions,
        )?;
        counter(
            enc,
            "kvs_media_fragments_total",
            "Matroska fragments written",
            r.fragments_written,
        )?;
        counter(
            enc,
            "kvs_media_bytes_total",
            "Bytes of fragments written",
            r.bytes_written,
        )?;
        labelled_counter(
            enc,
            "kvs_media_fragments_removed_total",
            "Fragments removed, by reason: expired (the stream's data retention), evicted (--media-max-bytes), orphaned (their stream was deleted)",
            "reason",
            [
                ("expired", r.fragments_expired),
                ("evicted", r.fragments_evicted),
                ("orphaned", r.fragments_orphaned),
            ]
            .into_iter(),
        )?;
        labelled_counter(
            enc,
            "kvs_media_samples_dropped_total",
            "Media samples not recorded, by reason (docs/media-storage.md \"Fragments\")",
            "reason",
            r.dropped.iter().map(|(why, n)| (why.as_str(), *n)),
        )?;
        counter(
            enc,
            "kvs_media_get_media_total",
            "GetMedia responses started",
            s.get_media_total,
        )?;
        gauge(
            enc,
            "kvs_media_get_media_open",
            "GetMedia responses streaming now",
            to_i(s.get_media_open),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs_media::DropReason;
    use prometheus_client::registry::Registry;

    #[test]
    fn every_sample_of_a_known_reading() {
        let scrape = MediaScrape {
            recorder: MediaFigures {
                fragments_written: 1,
                bytes_written: 2,
                fragments_expired: 3,
                fragments_evicted: 4,
                fragments_orphaned: 5,
                sessions: 6,
                dropped: DropReason::ALL.iter().map(|r| (*r, 7)).collect(),
            },
            get_media_open: 8,
            get_media_total: 9,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(MediaCollector::new(move || scrape.clone())));
        let text = super::super::render(&registry);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "kvs_media_sessions_total 6",
                "kvs_media_fragments_total 1",
                "kvs_media_bytes_total 2",
                r#"kvs_media_fragments_removed_total{reason="expired"} 3"#,
                r#"kvs_media_fragments_removed_total{reason="evicted"} 4"#,
                r#"kvs_media_fragments_removed_total{reason="orphaned"} 5"#,
                r#"kvs_media_samples_dropped_total{reason="before_keyframe"} 7"#,
                r#"kvs_media_samples_dropped_total{reason="no_parameter_sets"} 7"#,
                r#"kvs_media_samples_dropped_total{reason="no_keyframe"} 7"#,
                r#"kvs_media_samples_dropped_total{reason="late"} 7"#,
                r#"kvs_media_samples_dropped_total{reason="out_of_range"} 7"#,
                "kvs_media_get_media_total 9",
                "kvs_media_get_media_open 8",
            ]
        );
    }
}
