#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use kvs_core::clock::ManualClock;
use kvs_core::ids::{AccountId, Region, Version};
use kvs_core::streams::model::{stream_arn, KmsKeyId};
use kvs_core::streams::{Stream, StreamName};

use super::*;
use crate::local::LocalFragmentStore;
use crate::store::NewFragment;

const HOUR: u64 = 3_600_000;
const NOW: u64 = 1_700_000_000_000;

/// Streams by ARN, with the status in force.
#[derive(Default)]
struct Streams(Mutex<HashMap<String, StreamView>>);

#[async_trait]
impl StreamDirectory for Streams {
    async fn stream(&self, arn: &ResourceArn) -> Result<Option<StreamView>, ServiceError> {
        Ok(self.0.lock().unwrap().get(arn.as_str()).cloned())
    }
}

impl Streams {
    fn add(&self, name: &str, retention_hours: u32, status: Status) -> ResourceArn {
        let ns = Namespace::new(
            AccountId::parse("111122223333").unwrap(),
            Region::parse("us-west-2").unwrap(),
        );
        let name = StreamName::parse("n", name).unwrap();
        let arn = stream_arn(&ns, &name, 1);
        let stream = Stream {
            kms_key_id: KmsKeyId::aws_managed(&ns),
            ns,
            name,
            arn: arn.clone(),
            device_name: None,
            media_type: None,
            data_retention_hours: retention_hours,
            status,
            status_until_millis: 0,
            created_millis: 1,
            version: Version::generate(),
            tags: Default::default(),
            revision: 1,
        };
        let view = StreamView { stream, status };
        self.0.lock().unwrap().insert(arn.to_string(), view);
        arn
    }

    fn remove(&self, arn: &ResourceArn) {
        self.0.lock().unwrap().remove(arn.as_str());
    }
}

fn setup(max_bytes: u64) -> (Arc<Streams>, Arc<ManualClock>, MediaRecorder) {
    let streams = Arc::new(Streams::default());
    let clock = Arc::new(ManualClock::new(NOW));
    let recorder = MediaRecorder::new(
        Arc::clone(&streams) as Arc<dyn StreamDirectory>,
        Arc::new(LocalFragmentStore::memory()),
        Arc::clone(&clock) as Arc<dyn Clock>,
        RecorderConfig {
            max_bytes,
            ..RecorderConfig::default()
        },
    );
    (streams, clock, recorder)
}

fn frag(server_ms: u64, len: usize) -> NewFragment {
    NewFragment {
        producer_ms: server_ms,
        server_ms,
        duration_ms: 1000,
        cluster_offset: 0,
        bytes: Bytes::from(vec![0u8; len]),
    }
}

fn channel() -> ResourceArn {
    ResourceArn::parse(
        "c",
        "arn:aws:kinesisvideo:us-west-2:111122223333:channel/c/1",
    )
    .unwrap()
}

#[tokio::test]
async fn recordings_need_an_active_stream_with_retention() {
    let (streams, _, recorder) = setup(1 << 30);
    let ok = streams.add("ok", 1, Status::Active);
    let none = streams.add("none", 0, Status::Active);
    let busy = streams.add("busy", 1, Status::Updating);
    let missing = ResourceArn::parse(
        "s",
        "arn:aws:kinesisvideo:us-west-2:111122223333:stream/x/1",
    )
    .unwrap();
    assert!(recorder.open(&ok, &channel()).await.is_ok());
    let err = |r: Result<Box<dyn SampleSink>, MediaError>| r.err().unwrap().to_string();
    assert_eq!(
        err(recorder.open(&missing, &channel()).await),
        format!("stream not found: {missing}")
    );
    assert_eq!(
        err(recorder.open(&none, &channel()).await),
        "media rejected: the stream none has no data retention"
    );
    assert_eq!(
        err(recorder.open(&busy, &channel()).await),
        "media rejected: the stream busy is UPDATING, not ACTIVE"
    );
    assert_eq!(recorder.metrics().figures().sessions, 1);
}

#[tokio::test]
async fn upkeep_holds_retention_removes_orphans_and_evicts_the_oldest() {
    let (streams, clock, recorder) = setup(1000);
    let a = streams.add("a", 1, Status::Active);
    let b = streams.add("b", 2, Status::Active);
    let gone = streams.add("gone", 1, Status::Active);
    let store = Arc::clone(recorder.store());
    let (ka, kb, kg) = (
        StreamKey::from_arn(&a),
        StreamKey::from_arn(&b),
        StreamKey::from_arn(&gone),
    );
    // a: one fragment 90 min old (past 1 h), one recent; b: the same, kept (2 h).
    store
        .append(&ka, frag(NOW - 90 * 60_000, 100))
        .await
        .unwrap();
    store.append(&ka, frag(NOW - 1000, 100)).await.unwrap();
    store
        .append(&kb, frag(NOW - 90 * 60_000, 100))
        .await
        .unwrap();
    store.append(&kb, frag(NOW - 500, 100)).await.unwrap();
    store.append(&kg, frag(NOW, 100)).await.unwrap();
    streams.remove(&gone);
    let removed = recorder.upkeep().await.unwrap();
    assert_eq!(removed.fragments, 2);
    let f = recorder.metrics().figures();
    assert_eq!(
        (
            f.fragments_expired,
            f.fragments_orphaned,
            f.fragments_evicted
        ),
        (1, 1, 0)
    );
    assert_eq!(store.streams().await.unwrap(), vec![ka.clone(), kb.clone()]);
    assert_eq!(store.usage().await.unwrap().bytes, 300);
    // Over the byte bound: the oldest by server time anywhere (b's 90-minute-old one) goes.
    store.append(&ka, frag(NOW, 800)).await.unwrap();
    recorder.upkeep().await.unwrap();
    assert_eq!(recorder.metrics().figures().fragments_evicted, 1);
    assert_eq!(
        store.list(&kb, Position::Earliest, 10).await.unwrap().len(),
        1
    );
    assert_eq!(store.usage().await.unwrap().bytes, 1000);
    // Two hours on, b's retention takes its last fragment and a's too.
    clock.advance(Duration::from_millis(2 * HOUR + 1));
    recorder.upkeep().await.unwrap();
    assert_eq!(store.usage().await.unwrap().fragments, 0);
}
