//! `hearth logs WORKLOAD`: a workload's guest lines (stdout, stderr, `wasi:logging`) from
//! its host's admin API; `-f` keeps streaming new ones. With `--cluster URL`, a deployment's
//! lines from every host that runs a replica of it ([`crate::cluster_logs`]).

use crate::admin_client::{AdminArgs, workload_path};
use crate::{EXIT_FAILED, EXIT_INVALID};
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The workload (`metadata.name`); with --cluster, a deployment or one replica.
    pub workload: String,
    /// Keep streaming new lines until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only this component's lines.
    #[arg(long, value_name = "NAME", conflicts_with = "service")]
    pub component: Option<String>,
    /// Only the service's lines.
    #[arg(long)]
    pub service: bool,
    /// Only lines this recent: `30s`, `5m`, `2h`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub since: Option<u64>,
    /// Print the host's JSON lines as they are.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

/// `30s`, `5m`, `2h` or `1d` as seconds (a bare number is seconds).
fn parse_age(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected an age like 30s, 5m or 2h, found `{text}`"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "expected an age like 30s, 5m or 2h, found `{text}`"
            ));
        }
    };
    Ok(n * scale)
}

pub fn main(args: &LogsArgs) -> ExitCode {
    if args.cluster.url.is_some() {
        let read = crate::cluster::block_on(crate::cluster_logs::run(args, &args.cluster));
        return match read.and_then(|r| r) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    let client = match args.admin.client_or_usage_error() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut path = match workload_path(&args.workload) {
        Ok(p) => format!("{p}/logs?"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if args.follow {
        path.push_str("follow=1&");
    }
    if let Some(seconds) = args.since {
        path.push_str(&format!("since={seconds}&"));
    }
    match (&args.component, args.service) {
        (Some(name), _) => path.push_str(&format!("part={name}&")),
        (None, true) => path.push_str("part=service&"),
        (None, false) => {}
    }
    let path = path.trim_end_matches(['&', '?']).to_string();
    let mut out = std::io::stdout().lock();
    let result = client.stream_lines(&path, |line| {
        let text = if args.json {
            line.to_string()
        } else {
            human(line)
        };
        writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
    });
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(refused)) => {
            eprintln!("error: {}", refused.error_text());
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `HH:MM:SS.mmm part stream: text`, or the line itself if it is not a log line.
fn human(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    if let Some(missed) = v["missed"].as_u64() {
        return format!("... {missed} lines missed (the reader fell behind)");
    }
    format!(
        "{} {} {}: {}",
        clock(v["timeMs"].as_u64().unwrap_or(0)),
        v["part"].as_str().unwrap_or("-"),
        v["stream"].as_str().unwrap_or("-"),
        v["text"].as_str().unwrap_or_default()
    )
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds since the Unix epoch.
pub(crate) fn clock(ms: u64) -> String {
    let (secs, milli) = (ms / 1000 % 86_400, ms % 1000);
    format!(
        "{:02}:{:02}:{:02}.{milli:03}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl_since() {
        assert_eq!(parse_age("30s"), Ok(30));
        assert_eq!(parse_age("5m"), Ok(300));
        assert_eq!(parse_age("2h"), Ok(7_200));
        assert_eq!(parse_age("45"), Ok(45));
        assert!(parse_age("5 minutes").is_err());
        assert!(parse_age("m").is_err());
    }

    #[test]
    fn a_line_reads_as_time_part_stream_text() {
        let line = r#"{"seq":3,"timeMs":3723004,"workload":"w","part":"svc","stream":"stderr","level":"warn","text":"boom"}"#;
        assert_eq!(human(line), "01:02:03.004 svc stderr: boom");
        assert_eq!(
            human(r#"{"missed":7}"#),
            "... 7 lines missed (the reader fell behind)"
        );
    }
}
