//! `GET /v1/workloads/{name}/logs`: a workload's recent guest lines as JSON lines, then (with
//! `follow=1`) new ones as they are written, streamed until the client goes away.
//!
//! Query: `since=SECONDS` (only lines that recent), `part=NAME` (one component or the
//! service), `follow=1`. A follower that falls behind gets `{"missed": N}` and reads on.

use crate::responses;
use bytes::Bytes;
use futures::StreamExt;
use hearth_runtime::logs::{self, LogLine};
use hearth_runtime::{OutgoingBody, Workloads};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast::error::RecvError;

/// What the query asks for.
struct Query {
    since_ms: u64,
    part: Option<String>,
    follow: bool,
}

fn query(raw: Option<&str>) -> Result<Query, String> {
    let mut q = Query {
        since_ms: 0,
        part: None,
        follow: false,
    };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| format!("since: expected whole seconds, found `{value}`"))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                q.since_ms = now.saturating_sub(seconds.saturating_mul(1000));
            }
            "part" => q.part = Some(value.to_string()),
            "follow" => q.follow = matches!(value, "1" | "true" | ""),
            other => return Err(format!("unknown parameter `{other}` (since, part, follow)")),
        }
    }
    Ok(q)
}

pub(super) fn handle(
    workloads: &Workloads,
    name: &str,
    raw_query: Option<&str>,
) -> Response<OutgoingBody> {
    let q = match query(raw_query) {
        Ok(q) => q,
        Err(why) => return responses::owned_text(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    let hub = logs::hub();
    // Follow first, so no line falls between the kept ones and the followed ones.
    let feed = q.follow.then(|| hub.follow());
    let recent = hub.recent(name, q.since_ms);
    if recent.is_empty() && workloads.get(name).is_none() {
        return responses::owned_text(
            StatusCode::NOT_FOUND,
            format!("404 Not Found: no workload `{name}` and no lines of it\n"),
        );
    }
    let name = name.to_string();
    let wanted =
        move |l: &LogLine| l.workload == name && q.part.as_ref().is_none_or(|p| l.part == *p);
    let wanted = Arc::new(wanted);
    let last = recent.last().map_or(0, |l| l.seq);
    let kept: Vec<Bytes> = recent
        .iter()
        .filter(|l| wanted(l))
        .map(|l| json_line(l))
        .collect();
    let kept = futures::stream::iter(kept);
    let followed = futures::stream::unfold(feed, move |feed| {
        let wanted = Arc::clone(&wanted);
        async move {
            let mut feed = feed?;
            loop {
                match feed.recv().await {
                    Ok(line) if line.seq > last && wanted(&line) => {
                        return Some((json_line(&line), Some(feed)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let missed = Bytes::from(format!("{{\"missed\":{n}}}\n"));
                        return Some((missed, Some(feed)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let frames = kept
        .chain(followed)
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let body = StreamBody::new(frames)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    *resp.status_mut() = StatusCode::OK;
    resp
}

fn json_line(line: &LogLine) -> Bytes {
    let mut out = serde_json::to_vec(line).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}
