//! WATCH: one JSON event per line, as the real server streams them.
//!
//! From `resourceVersion` N, every change after N (from an N older than the oldest change kept,
//! an `ERROR` event with a `410 Expired` Status, and the stream ends); with no
//! `resourceVersion` (or `0`), or with `sendInitialEvents=true`, first every current object
//! as `ADDED`. Label and field selectors apply to each change as on the real server: an
//! object that stops matching is `DELETED` for the watch, one that starts matching `ADDED`.
//! With `allowWatchBookmarks=true`, a `BOOKMARK` with the current `resourceVersion` comes every
//! few seconds and at the end (and, after `sendInitialEvents`, one marked
//! `k8s.io/initial-events-end`). The stream ends after `timeoutSeconds` (default 30 minutes).
//! Objects come whole, or as `PartialObjectMetadata` when the `Accept` asks; never as `Table`
//! rows (`kubectl get -w` is not served).

use crate::kinds::Kind;
use crate::lock;
use crate::query::Query;
use crate::respond::{Body, Failure};
use crate::selectors::Filter;
use crate::store::{Change, State};
use crate::table::Form;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// The default (and longest) life of a watch.
const LONGEST: Duration = Duration::from_secs(1800);

/// One watch request.
#[derive(Debug)]
pub(crate) struct Watch {
    kind: Kind,
    namespace: String,
    filter: Filter,
    form: Form,
    /// The `resourceVersion` to watch from; `None` to start with the current objects.
    since: Option<u64>,
    initial_events: bool,
    bookmarks: bool,
    timeout: Duration,
}

impl Watch {
    pub(crate) fn parse(
        kind: Kind,
        namespace: &str,
        query: &Query,
        accept: &str,
    ) -> Result<Self, Failure> {
        let since = match query.get("resourceVersion").unwrap_or_default() {
            "" | "0" => None,
            v => Some(v.parse::<u64>().map_err(|_| {
                Failure::bad_request(format!("resourceVersion: Invalid value: {v:?}"))
            })?),
        };
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(LONGEST, Duration::from_secs)
            .min(LONGEST);
        Ok(Self {
            filter: Filter::from_query(query)?,
            form: match Form::of(accept) {
                Form::Metadata => Form::Metadata,
                Form::Object | Form::Table => Form::Object,
            },
            namespace: namespace.into(),
            since,
            initial_events: query.flag("sendInitialEvents"),
            bookmarks: query.flag("allowWatchBookmarks"),
            timeout,
            kind,
        })
    }

    fn event(&self, verb: &str, object: &Value) -> Value {
        json!({"type": verb, "object": self.form.object(&self.kind, object, 0)})
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {
            "kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": metadata,
        }})
    }

    /// The first events: the current objects, or the changes since `since`.
    fn opening(&self, st: &State) -> Batch {
        match self.since {
            Some(since) if !self.initial_events => self.changes_since(st, since),
            _ => {
                let mut events: Vec<Value> = st
                    .of_kind(&self.kind, &self.namespace)
                    .iter()
                    .filter(|o| self.filter.matches(o))
                    .map(|o| self.event("ADDED", o))
                    .collect();
                if self.initial_events && self.bookmarks {
                    events.push(self.bookmark(st.revision, true));
                }
                Batch {
                    events,
                    gone: false,
                }
            }
        }
    }

    /// The changes after `since` that this watch sees.
    fn changes_since(&self, st: &State, since: u64) -> Batch {
        if since < st.compacted {
            let status = Failure::new(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {since} ({})", st.compacted),
            )
            .status();
            return Batch {
                events: vec![json!({"type": "ERROR", "object": status})],
                gone: true,
            };
        }
        let resource = self.kind.resource();
        let events = st
            .changes
            .iter()
            .filter(|c| c.revision > since && c.resource == resource)
            .filter(|c| self.namespace.is_empty() || c.namespace == self.namespace)
            .filter_map(|c| self.view(c))
            .collect();
        Batch {
            events,
            gone: false,
        }
    }

    /// How a change looks through the selectors.
    fn view(&self, change: &Change) -> Option<Value> {
        let now = self.filter.matches(&change.object);
        let before = change
            .previous
            .as_ref()
            .is_some_and(|p| self.filter.matches(p));
        let verb = match (change.verb, before, now) {
            ("MODIFIED", true, true) => "MODIFIED",
            ("MODIFIED", false, true) | ("ADDED", _, true) => "ADDED",
            ("MODIFIED", true, false) => "DELETED",
            ("DELETED", b, n) if b || n => "DELETED",
            _ => return None,
        };
        Some(self.event(verb, &change.object))
    }
}

/// Events to send; `gone` ends the watch after them.
struct Batch {
    events: Vec<Value>,
    gone: bool,
}

/// Starts streaming `watch`.
pub(crate) fn start(state: Arc<Mutex<State>>, watch: Watch) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(run(state, watch, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Sends events; false when the client has gone.
async fn send(tx: &mpsc::Sender<Bytes>, events: Vec<Value>) -> bool {
    for event in events {
        if tx.send(Bytes::from(format!("{event}\n"))).await.is_err() {
            return false;
        }
    }
    true
}

async fn run(state: Arc<Mutex<State>>, watch: Watch, tx: mpsc::Sender<Bytes>) {
    let changed = Arc::clone(&lock(&state).changed);
    let deadline = Instant::now() + watch.timeout;
    let mut next_bookmark = Instant::now() + BOOKMARK_EVERY;
    let mut seen = None;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (batch, revision) = {
            let st = lock(&state);
            let batch = match seen {
                None => watch.opening(&st),
                Some(seen) => watch.changes_since(&st, seen),
            };
            (batch, st.revision)
        };
        seen = Some(revision);
        if !send(&tx, batch.events).await || batch.gone {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = tx.closed() => return,
            () = sleep_until(deadline) => {
                if watch.bookmarks {
                    send(&tx, vec![watch.bookmark(revision, false)]).await;
                }
                return;
            }
            () = sleep_until(next_bookmark), if watch.bookmarks => {
                next_bookmark = Instant::now() + BOOKMARK_EVERY;
                if !send(&tx, vec![watch.bookmark(revision, false)]).await {
                    return;
                }
            }
        }
    }
}
