//! `yyyymmddThhmmssZ` (ISO 8601 basic, UTC), the only time format SigV4 uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

pub fn parse(s: &str) -> Option<SystemTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    if s.len() != 16 {
        return None;
    }
    let t = PrimitiveDateTime::parse(s, fmt).ok()?.assume_utc();
    let secs = t.unix_timestamp();
    if secs < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
}

pub fn format(t: SystemTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from(t)
        .format(fmt)
        .unwrap_or_else(|_| "19700101T000000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert_eq!(format(t), "20150830T123600Z");
        assert!(parse("2015-08-30T12:36:00Z").is_none());
        assert!(parse("20151330T123600Z").is_none());
        assert!(parse("").is_none());
    }
}
