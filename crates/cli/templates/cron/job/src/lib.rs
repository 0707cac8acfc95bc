//! The job: exports `wasmcloud:example/cron.invoke`, which the service calls every second.
//! Each call runs on a fresh instance, so nothing carries over from one call to the next;
//! what it prints goes to hearth's log.
//!
//! The work is [`run`], a plain function that `cargo test` checks natively; only the export
//! glue at the bottom is built for `wasm32-wasip2`.

/// One run of the job at `unix_secs` (seconds since 1970); returns the line to log, or why
/// it failed (the service logs that).
pub fn run(unix_secs: u64) -> Result<String, String> {
    Ok(format!("{{name}} job ran at {} UTC", clock(unix_secs)))
}

/// The time of day of a Unix time, `HH:MM:SS`.
pub fn clock(unix_secs: u64) -> String {
    let secs = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(target_arch = "wasm32")]
mod export {
    wit_bindgen::generate!({
        world: "component",
        path: "../wit",
    });

    struct Job;

    impl exports::wasmcloud::example::cron::Guest for Job {
        fn invoke() -> Result<(), String> {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            println!("{}", super::run(now.as_secs())?);
            Ok(())
        }
    }

    export!(Job);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_the_time_of_day() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(86_400 + 3_661), "01:01:01");
    }

    #[test]
    fn run_says_when() {
        assert_eq!(run(59).unwrap(), "{{name}} job ran at 00:00:59 UTC");
    }
}
