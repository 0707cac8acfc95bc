//! Times as the API server writes them (RFC 3339, UTC, whole seconds) and as `kubectl get`
//! shows them (ages such as `5s` or `3m`).

use jiff::Timestamp;
use serde_json::{Value, json};

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`, the form of `metadata.creationTimestamp`.
fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, as the server writes times.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(Timestamp::now())
}

/// `5s`, `3m`, `2h`, `4d` since an RFC 3339 time, as kubectl shows ages; `null` if `value`
/// is not a time.
pub(crate) fn age(value: &Value) -> Value {
    let Some(then) = value.as_str().and_then(|s| s.parse::<Timestamp>().ok()) else {
        return Value::Null;
    };
    let seconds = (Timestamp::now().as_second() - then.as_second()).max(0);
    json!(match seconds {
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
    fn times_are_whole_seconds_in_utc() {
        let t = Timestamp::from_second(951_782_400).unwrap();
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(&json!(now_rfc3339())), json!("0s"));
        let ten_minutes_ago = Timestamp::from_second(Timestamp::now().as_second() - 600).unwrap();
        assert_eq!(age(&json!(rfc3339(ten_minutes_ago))), json!("10m"));
        assert_eq!(age(&json!(42)), Value::Null);
    }
}
