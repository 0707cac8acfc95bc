//! `hearth logs NAME --cluster URL`: the guest lines of a deployment's replicas (or of one
//! replica) from every host that runs one. The hosts are found by their heartbeats; each is
//! asked over NATS (`logs`, request/reply) for the lines after the cursor it last gave.
//! With `-f` the hosts are asked again every [`POLL`], and hosts that start a replica later
//! are picked up from their heartbeats; a host that restarted numbers its lines anew, which
//! its reply's `instance` tells, so its cursor starts over from the last line's time.

use crate::cluster::ClusterArgs;
use crate::logs::{LogsArgs, clock};
use futures::StreamExt;
use hearth_cluster::protocol::{
    self, Heartbeat, LogEntry, LogsReply, LogsRequest, PROTOCOL, subject,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often `-f` asks each host for new lines.
const POLL: Duration = Duration::from_millis(300);
/// How long a host has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Lines asked for per request.
const PAGE: u32 = 1000;

/// Where reading one host has got to.
struct Cursor {
    instance: Option<String>,
    after: u64,
    since_ms: u64,
    /// Whether its last failure was told already (told once until it answers again).
    failing: bool,
}

/// Prints the lines; `Err` when NATS cannot be reached or no host runs a replica of the
/// name (a host that fails to answer is warned about once and asked again).
pub async fn run(args: &LogsArgs, cluster: &ClusterArgs) -> Result<(), String> {
    let url = cluster.url.as_deref().unwrap_or_default();
    let client = cluster.auth.connect(url, "hearth-cli-logs").await?;
    let mut beats = client
        .subscribe(subject::heartbeats())
        .await
        .map_err(|e| format!("cannot watch the hosts' heartbeats: {e}"))?;
    let since_ms = args.since.map_or(0, |s| now_ms().saturating_sub(s * 1000));
    let part = match (&args.component, args.service) {
        (Some(name), _) => Some(name.clone()),
        (None, true) => Some("service".to_string()),
        (None, false) => None,
    };
    let mut hosts: BTreeMap<String, Cursor> = BTreeMap::new();
    for hb in crate::cluster::one_period(&mut beats).await {
        runs(&hb, &args.workload, since_ms, &mut hosts);
    }
    if hosts.is_empty() {
        return Err(format!(
            "no host of the cluster runs a replica of `{}` (a deployment's name or a replica's id)",
            args.workload
        ));
    }
    let mut out = std::io::stdout().lock();
    loop {
        // Every host at once: one that went away costs its timeout, not the others' turn.
        let reads = hosts.iter_mut().map(|(host, cursor)| {
            read_host(&client, host, cursor, &args.workload, part.as_deref())
        });
        let mut round: Vec<(String, LogEntry)> = futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect();
        // Lines of different hosts interleave by time.
        round.sort_by(|(a_host, a), (b_host, b)| {
            (a.time_ms, a_host, a.seq).cmp(&(b.time_ms, b_host, b.seq))
        });
        for (host, line) in &round {
            let text = if args.json {
                let mut value = serde_json::to_value(line).unwrap_or_default();
                value["host"] = serde_json::Value::from(host.as_str());
                value.to_string()
            } else {
                format!(
                    "{} {host}/{} {} {}: {}",
                    clock(line.time_ms),
                    line.replica,
                    line.part,
                    line.stream,
                    line.text
                )
            };
            if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                return Ok(()); // the reader went away
            }
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        while let Some(Some(message)) = futures::FutureExt::now_or_never(beats.next()) {
            if let Ok(hb) = protocol::decode::<Heartbeat>(&message.payload) {
                runs(&hb, &args.workload, since_ms, &mut hosts);
            }
        }
    }
}

/// Adds `hb`'s host if it runs a replica of `name` and is not read yet.
fn runs(hb: &Heartbeat, name: &str, since_ms: u64, hosts: &mut BTreeMap<String, Cursor>) {
    if hb
        .replicas
        .iter()
        .any(|r| r.deployment == name || r.id == name)
    {
        hosts.entry(hb.host_id.clone()).or_insert(Cursor {
            instance: None,
            after: 0,
            since_ms,
            failing: false,
        });
    }
}

/// `host`'s new lines, page after page, each with the host's id.
async fn read_host(
    client: &async_nats::Client,
    host: &str,
    cursor: &mut Cursor,
    name: &str,
    part: Option<&str>,
) -> Vec<(String, LogEntry)> {
    let mut round = Vec::new();
    loop {
        let request = LogsRequest {
            protocol: PROTOCOL,
            name: name.to_string(),
            part: part.map(str::to_string),
            after: cursor.after,
            since_ms: cursor.since_ms,
            max: PAGE,
        };
        let asked = async_nats::Request::new()
            .payload(protocol::encode(&request))
            .timeout(Some(ANSWER_WITHIN));
        let answer = client
            .send_request(subject::command(host, subject::Verb::Logs), asked)
            .await
            .map_err(|e| e.to_string())
            .and_then(|m| protocol::decode::<LogsReply>(&m.payload));
        let (instance, lines, next, more) = match answer {
            Ok(LogsReply::Ok {
                instance,
                lines,
                cursor,
                more,
            }) => (instance, lines, cursor, more),
            Ok(LogsReply::Invalid { reason }) | Err(reason) => {
                if !cursor.failing {
                    eprintln!("warning: host `{host}`: cannot read its lines: {reason}");
                    cursor.failing = true;
                }
                return round;
            }
        };
        cursor.failing = false;
        if cursor.instance.as_ref().is_some_and(|i| *i != instance) {
            // The host restarted: its numbering began again. Ask again from the time of
            // the last line read, so nothing written since is skipped.
            cursor.instance = Some(instance);
            cursor.after = 0;
            continue;
        }
        cursor.instance = Some(instance);
        cursor.after = next;
        if let Some(last) = lines.last() {
            cursor.since_ms = cursor.since_ms.max(last.time_ms);
        }
        round.extend(lines.into_iter().map(|l| (host.to_string(), l)));
        if !more {
            return round;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
