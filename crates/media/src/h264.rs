//! H.264 as the fragment writer needs it: Annex B access units split into NAL units, the
//! parameter sets picked out for the track's `avcC` (ISO/IEC 14496-15 AVCDecoderConfiguration),
//! the picture size read from the SPS (parsed by `h264-reader`), and the length-prefixed (AVCC)
//! form Matroska's `V_MPEG4/ISO/AVC` blocks carry.

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1F)
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes; trailing zero bytes of a
/// unit belong to the next start code and are dropped).
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// The width and height an SPS describes (cropping applied), if it parses.
pub fn sps_dimensions(sps: &[u8]) -> Option<(u32, u32)> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    parsed.pixel_dimensions().ok()
}

/// The `avcC` record for one SPS and one PPS, with 4-byte NAL lengths.
pub fn avcc_record(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || pps.is_empty() || sps.len() > 0xFFFF || pps.len() > 0xFFFF {
        return None;
    }
    let mut out = Vec::with_capacity(11 + sps.len() + pps.len());
    // configurationVersion, profile, compatibility, level (the SPS's bytes 1..4).
    out.extend_from_slice(&[1, sps[1], sps[2], sps[3]]);
    // 6 reserved bits + lengthSizeMinusOne = 3; 3 reserved bits + one SPS.
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    out.extend_from_slice(pps);
    Some(out)
}

/// NAL units in the length-prefixed form, leaving out what the codec private data carries
/// (SPS, PPS) and access unit delimiters.
pub fn to_avcc_payload(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        if matches!(nal_type(nal), NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// x264's SPS for 320x240 constrained baseline (from `ffmpeg -f lavfi -i testsrc=size=320x240
    /// -pix_fmt yuv420p -c:v libx264 -profile:v baseline`).
    pub const SPS_320X240: &[u8] = &[
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x42, 0xA4, 0x80,
    ];

    #[test]
    fn annex_b_splits_on_both_start_code_lengths() {
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 0xAA, 0, 0, 0, 1, 0x68, 0xBB, 0, 0, 1, 0x65, 1,
            2, 3,
        ];
        let nals = split_annex_b(&au);
        assert_eq!(
            nals,
            vec![
                &[0x09, 0xF0][..],
                &[0x67, 0xAA],
                &[0x68, 0xBB],
                &[0x65, 1, 2, 3]
            ]
        );
        let types: Vec<u8> = nals.iter().map(|n| nal_type(n)).collect();
        assert_eq!(types, [NAL_AUD, NAL_SPS, NAL_PPS, NAL_IDR]);
        assert!(split_annex_b(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn payload_is_length_prefixed_without_parameter_sets() {
        let nals: Vec<&[u8]> = vec![&[0x09, 0xF0], &[0x67, 1], &[0x68, 2], &[0x65, 7, 8]];
        assert_eq!(to_avcc_payload(&nals), [0, 0, 0, 3, 0x65, 7, 8]);
    }

    #[test]
    fn avcc_names_profile_and_level_and_carries_both_sets() {
        let pps = [0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0];
        let rec = avcc_record(SPS_320X240, &pps).unwrap();
        assert_eq!(&rec[..6], &[1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1]);
        assert_eq!(&rec[6..8], &[0, SPS_320X240.len() as u8]);
        assert_eq!(&rec[8..8 + SPS_320X240.len()], SPS_320X240);
        let rest = &rec[8 + SPS_320X240.len()..];
        assert_eq!(rest, &[1, 0, 6, 0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0]);
        assert!(avcc_record(&[0x67], &pps).is_none());
    }

    #[test]
    fn sps_gives_the_picture_size() {
        assert_eq!(sps_dimensions(SPS_320X240), Some((320, 240)));
        assert_eq!(sps_dimensions(&[0x67, 0x64]), None);
    }
}
