//! Times as the API server writes them (RFC 3339, UTC, whole seconds) and as `kubectl get`
//! shows them (ages such as `5s` or `3m`). Written by hand so the stand-in needs no date
//! library.

use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`, the form of `metadata.creationTimestamp`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(now_seconds())
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The calendar date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS…` (fractions and zone ignored: the
/// server writes UTC).
pub(crate) fn epoch_seconds(text: &str) -> Option<i64> {
    let n = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3_600 + mm * 60 + ss)
}

/// `5s`, `3m`, `2h`, `4d` since an RFC 3339 time, as kubectl shows ages; `null` if `value`
/// is not a time.
pub(crate) fn age(value: &Value) -> Value {
    let Some(then) = value.as_str().and_then(epoch_seconds) else {
        return Value::Null;
    };
    json!(match (now_seconds() - then).max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(epoch_seconds(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(&json!(now_rfc3339())), json!("0s"));
        assert_eq!(age(&json!(rfc3339(now_seconds() - 600))), json!("10m"));
        assert_eq!(age(&json!(42)), Value::Null);
    }
}
