//! Real H.264 and Opus through the fragmenter into a store, the stored fragments concatenated
//! as GetMedia sends them, and ffprobe reading the result: what must hold for a GetMedia body
//! to play (docs/media-storage.md "Chunks").

mod support;

use std::sync::Arc;

use kvs_media::mkv::{chunk_parts, ChunkTags};
use kvs_media::{
    FragmentRules, FragmentStore, Fragmenter, LocalFragmentStore, Position, StreamKey,
};

#[tokio::test]
async fn concatenated_chunks_play_as_one_recording() {
    let dir = std::env::temp_dir().join(format!("kvs-media-ffprobe-{}", std::process::id()));
    let (video, audio) = support::make_media(&dir, 6);
    let samples = support::samples(&video, &audio, support::epoch(1_764_000_000_000));
    let store: Arc<dyn FragmentStore> = Arc::new(LocalFragmentStore::memory());
    let key = StreamKey {
        account: "111122223333".into(),
        region: "us-west-2".into(),
        name: "cam".into(),
        created: "1".into(),
    };
    let mut f = Fragmenter::new(FragmentRules::default());
    for s in samples {
        for frag in f.push(s) {
            store.append(&key, frag).await.unwrap();
        }
    }
    if let Some(frag) = f.finish() {
        store.append(&key, frag).await.unwrap();
    }
    assert!(f.dropped.is_empty(), "{:?}", f.dropped);
    let metas = store.list(&key, Position::Earliest, 100).await.unwrap();
    // A keyframe every second, cut once a fragment is a second long: six fragments.
    assert_eq!(metas.len(), 6, "{metas:?}");
    let mut body = Vec::new();
    for m in &metas {
        let stored = store.read(&key, m.number).await.unwrap().unwrap();
        let tags = ChunkTags {
            fragment_number: m.number.to_string(),
            server_ms: m.server_ms,
            producer_ms: m.producer_ms,
            continuation_token: m.number.to_string(),
            millis_behind_now: 0,
        };
        let mut chunk = Vec::new();
        for part in chunk_parts(&stored, m.cluster_offset as usize, &tags) {
            chunk.extend_from_slice(&part);
        }
        body.extend_from_slice(&chunk);
    }
    let path = dir.join("body.mkv");
    std::fs::write(&path, &body).unwrap();
    let probe = support::ffprobe(&path);
    let streams = probe["streams"].as_array().unwrap();
    let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    let a = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(a["codec_name"], "opus");
    assert_eq!(a["channels"], 2);
    println!("format: {}", probe["format"]);
    let (frames, packets, span) = support::decode_counts(&path);
    println!("video packets {frames}, audio packets {packets}, span {span}");
    assert_eq!(frames, 180);
    assert!((290..=302).contains(&packets), "{packets}");
    assert!((5.8..6.1).contains(&span), "{span}");
    // ffmpeg reads on past each chunk's end into the next one (the Segments are of unknown
    // size, as AWS's are; with known sizes it stopped after the first chunks) and says so once
    // per chunk boundary; nothing else is reported while decoding everything.
    let errors = support::decode_errors(&path);
    let others: Vec<&str> = errors
        .lines()
        .filter(|l| !l.contains("Found unknown-length element with ID 0x18538067"))
        .collect();
    assert!(others.is_empty(), "{errors}");
    assert_eq!(errors.lines().count(), metas.len() - 1, "{errors}");
    let _ = std::fs::remove_dir_all(&dir);
}
