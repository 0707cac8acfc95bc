//! Steering: a connection whose first request goes to a workload with a home worker (the
//! worker its service runs on) is served by that worker. The kernel spreads connections over
//! the workers' `SO_REUSEPORT` listeners without knowing where they go; the worker that
//! accepted one reads its first request head, routes it, and hands the socket and the bytes
//! read to the home worker when that is another. From then on, every request on the
//! connection, the instance serving it and its virtual connections to the service share one
//! thread. One hand-off per connection instead of cross-thread wake-ups per request.
//!
//! Only plain-text HTTP/1 is steered: HTTP/2 and TLS connections are served where accepted.

use crate::limits::Admitted;
use crate::router::Deployed;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Headers looked at in a first head; a head with more is served where it was accepted.
const MAX_HEADERS: usize = 64;

/// A connection on its way to its home worker.
pub(crate) struct Handoff {
    pub(crate) stream: std::net::TcpStream,
    /// What was read of it already (at least its first request head).
    pub(crate) head: Vec<u8>,
    pub(crate) peer: SocketAddr,
    pub(crate) admitted: Admitted,
}

/// One worker's view of the others: where to send a connection that belongs elsewhere.
#[derive(Clone)]
pub(crate) struct Steering {
    /// This worker's number.
    pub(crate) me: usize,
    pub(crate) inboxes: std::sync::Arc<[mpsc::UnboundedSender<Handoff>]>,
}

/// Where a connection just accepted goes.
pub(crate) enum Steered {
    /// Serve it here, reading `head` first, under its admission.
    Here {
        stream: TcpStream,
        head: Vec<u8>,
        admitted: Admitted,
    },
    /// Handed to another worker.
    Away,
    /// Its first head did not arrive in time: answered `408` and closed.
    TimedOut,
}

impl Steering {
    /// Reads `stream`'s first request head (within the header timeout) and hands the
    /// connection to its workload's home worker if that is another one.
    pub(crate) async fn steer(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        admitted: Admitted,
        router: &Deployed,
        (timeout, max_head): (Duration, usize),
    ) -> Steered {
        let read = first_head(&mut stream, max_head);
        let (head, target) = match tokio::time::timeout(timeout, read).await {
            Ok(read) => read,
            Err(_) => {
                use tokio::io::AsyncWriteExt;
                let _ = stream.write_all(crate::conn::REQUEST_TIMEOUT).await;
                return Steered::TimedOut;
            }
        };
        let home = target.and_then(|(host, path)| router.home_of(host.as_deref(), &path));
        let Some(inbox) = home
            .filter(|&h| h != self.me)
            .and_then(|h| self.inboxes.get(h))
        else {
            return Steered::Here {
                stream,
                head,
                admitted,
            };
        };
        match stream.into_std() {
            Ok(stream) => {
                let handoff = Handoff {
                    stream,
                    head,
                    peer,
                    admitted,
                };
                // The receiving worker is gone only at shutdown: the connection is dropped.
                let _ = inbox.send(handoff);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "cannot hand a connection over"),
        }
        Steered::Away
    }
}

/// Where a request goes: its host (absolute-form authority, else `Host`) and path.
type Target = (Option<String>, String);

/// What the bytes read so far say.
enum Head {
    /// The start of a head: read on.
    More,
    /// A whole head, and its target when it is HTTP/1 with a valid one; or bytes that are
    /// no head at all (HTTP/2, garbage), with none.
    Done(Option<Target>),
}

/// Reads until `stream` holds a whole request head, `max` bytes, an error or the end:
/// whatever was read, for hyper to make sense of (or refuse) in every case, and the first
/// request's target if it could be told.
async fn first_head(stream: &mut TcpStream, max: usize) -> (Vec<u8>, Option<Target>) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return (buf, None),
            Ok(_) => {}
        }
        match head(&buf) {
            Head::More if buf.len() < max => buf.reserve(1024),
            Head::More => return (buf, None),
            Head::Done(target) => return (buf, target),
        }
    }
}

/// Parses the request head starting `bytes`.
fn head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => Head::More,
        Ok(httparse::Status::Complete(_)) => Head::Done(target(&req)),
        Err(_) => Head::Done(None),
    }
}

/// The target of a whole, parsed request head.
fn target(req: &httparse::Request<'_, '_>) -> Option<Target> {
    let uri: http::Uri = req.path?.parse().ok()?;
    let host = uri.authority().map(|a| a.as_str().to_string()).or_else(|| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_string)
    });
    Some((host, uri.path().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target of `bytes` if they hold a whole head.
    fn target_of(bytes: &[u8]) -> Option<Target> {
        match head(bytes) {
            Head::Done(target) => target,
            Head::More => None,
        }
    }

    #[test]
    fn a_first_heads_target_comes_from_host_or_the_absolute_form() {
        let head = b"GET /incr/n?x=1 HTTP/1.1\r\nHost: cache.localhost:8080\r\n\r\n";
        assert_eq!(
            target_of(head),
            Some((Some("cache.localhost:8080".into()), "/incr/n".into()))
        );
        let head = b"GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n";
        assert_eq!(
            target_of(head),
            Some((Some("a.example".into()), "/p".into()))
        );
        assert_eq!(target_of(b"GET / HTTP/1.1\r\nHost: a"), None, "partial");
        assert_eq!(
            target_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            None,
            "HTTP/2"
        );
        assert_eq!(
            target_of(b"GET / HTTP/1.1\r\n\r\n"),
            Some((None, "/".into()))
        );
    }
}
