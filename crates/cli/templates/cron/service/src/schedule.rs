//! When to call the job, and what to log about each call.

use std::time::Duration;

/// Time between two calls.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What to log after a call, given how many calls in a row had failed before it: failures,
/// and the first success after them. A healthy job stays quiet.
pub fn report(result: &Result<(), String>, failures: &mut u32) -> Option<String> {
    match result {
        Ok(()) if *failures > 0 => {
            let line = format!("job recovered after {failures} failed call(s)");
            *failures = 0;
            Some(line)
        }
        Ok(()) => None,
        Err(why) => {
            *failures += 1;
            Some(format!("job failed ({failures} in a row): {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_quiet() {
        let mut failures = 0;
        assert_eq!(report(&Ok(()), &mut failures), None);
    }

    #[test]
    fn failures_are_counted_until_a_success() {
        let mut failures = 0;
        let err = Err("boom".to_string());
        assert_eq!(
            report(&err, &mut failures).as_deref(),
            Some("job failed (1 in a row): boom")
        );
        assert_eq!(
            report(&err, &mut failures).as_deref(),
            Some("job failed (2 in a row): boom")
        );
        assert_eq!(
            report(&Ok(()), &mut failures).as_deref(),
            Some("job recovered after 2 failed call(s)")
        );
        assert_eq!(failures, 0);
    }
}
