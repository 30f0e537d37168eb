//! EBML element encoding (RFC 8794), the few lines the Matroska writer needs.
//!
//! Fragments are built whole in memory, so every master element's size is known when it is
//! written: children are encoded into their own buffer first and the parent writes the length.
//! The one exception is the Segment, written with the "unknown size" marker as AWS's chunks
//! are, so a reader of the GetMedia body takes the Tags appended after the Cluster as part of it.

/// Element IDs used by the writer (the Matroska specification's, marker bits included).
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const NAME: u32 = 0x536E;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const TARGETS: u32 = 0x63C0;
    pub const TARGET_TYPE_VALUE: u32 = 0x68CA;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TAG_STRING: u32 = 0x4487;
}

/// The 8-byte "unknown size" data size (all value bits set).
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// An element ID as written: its big-endian bytes without leading zeros.
fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// A data size as the shortest variable-size integer that holds it (the all-ones value of each
/// width is reserved for "unknown", so it moves to the next width).
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut width = 1usize;
    while width < 8 && size >= (1u64 << (7 * width)) - 1 {
        width += 1;
    }
    let marked = size | (1u64 << (7 * width));
    out.extend_from_slice(&marked.to_be_bytes()[8 - width..]);
}

/// Writes elements into a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn binary(&mut self, id: u32, data: &[u8]) -> &mut Self {
        put_id(&mut self.buf, id);
        put_size(&mut self.buf, data.len() as u64);
        self.buf.extend_from_slice(data);
        self
    }

    /// An unsigned integer in as few bytes as hold it (at least one).
    pub fn uint(&mut self, id: u32, v: u64) -> &mut Self {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
        self.binary(id, &bytes[skip..])
    }

    pub fn float(&mut self, id: u32, v: f64) -> &mut Self {
        self.binary(id, &v.to_be_bytes())
    }

    pub fn string(&mut self, id: u32, s: &str) -> &mut Self {
        self.binary(id, s.as_bytes())
    }

    /// A master element whose children `f` writes.
    pub fn master(&mut self, id: u32, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::new();
        f(&mut inner);
        self.binary(id, &inner.buf)
    }

    /// The start of a master element of unknown size; its children follow in the stream.
    pub fn unknown_size(&mut self, id: u32) -> &mut Self {
        put_id(&mut self.buf, id);
        self.buf.extend_from_slice(&UNKNOWN_SIZE);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        put_size(&mut v, n);
        v
    }

    #[test]
    fn sizes_take_the_shortest_width_and_avoid_the_reserved_value() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x80]),
            (1, &[0x81]),
            (126, &[0xFE]),
            // 127 in one byte would be 0xFF, "unknown": two bytes.
            (127, &[0x40, 0x7F]),
            (128, &[0x40, 0x80]),
            (16_382, &[0x7F, 0xFE]),
            (16_383, &[0x20, 0x3F, 0xFF]),
            (1 << 21, &[0x10, 0x20, 0x00, 0x00]),
        ];
        for (n, want) in cases {
            assert_eq!(size(*n), *want, "size {n}");
        }
    }

    #[test]
    fn elements_encode_id_size_and_payload() {
        let mut w = Writer::new();
        w.uint(id::TIMECODE_SCALE, 1_000_000);
        assert_eq!(w.buf, [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        let mut w = Writer::new();
        w.uint(id::TRACK_NUMBER, 0);
        assert_eq!(w.buf, [0xD7, 0x81, 0x00]);
        let mut w = Writer::new();
        w.string(id::DOC_TYPE, "matroska");
        assert_eq!(&w.buf[..3], &[0x42, 0x82, 0x88]);
        assert_eq!(&w.buf[3..], b"matroska");
        let mut w = Writer::new();
        w.float(id::SAMPLING_FREQUENCY, 48_000.0);
        assert_eq!(w.buf, [0xB5, 0x88, 0x40, 0xE7, 0x70, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn masters_wrap_their_children_and_segments_may_be_unknown_sized() {
        let mut w = Writer::new();
        w.master(id::TAG, |t| {
            t.uint(id::TRACK_NUMBER, 1);
        });
        assert_eq!(w.buf, [0x73, 0x73, 0x83, 0xD7, 0x81, 0x01]);
        let mut w = Writer::new();
        w.unknown_size(id::SEGMENT);
        assert_eq!(
            w.buf,
            [0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }
}
