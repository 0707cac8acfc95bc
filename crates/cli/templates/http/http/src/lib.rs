//! An HTTP component. hearth creates a fresh instance for every request, so nothing is kept
//! from one request to the next: state belongs in a service or a host interface.
//!
//! The answer is computed by a plain function, [`respond`], which `cargo test` checks
//! natively; only the glue at the bottom is built for `wasm32-wasip2`.

/// A response: status code and plain-text body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// Answers one request. `greeting` comes from the `GREETING` variable in `workload.yaml`.
///
/// - `GET /` answers the greeting.
/// - `GET /hello/NAME` answers `hello, NAME!`.
pub fn respond(method: &str, path: &str, greeting: &str) -> Reply {
    if method != "GET" {
        return Reply::new(405, "method not allowed\n");
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => Reply::new(200, format!("{greeting}\n")),
        ["hello", name] => Reply::new(200, format!("hello, {name}!\n")),
        _ => Reply::new(404, "not found\n"),
    }
}

#[cfg(target_arch = "wasm32")]
use wstd::http::{Body, Error, Request, Response};

#[cfg(target_arch = "wasm32")]
#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_string());
    let reply = respond(request.method().as_str(), request.uri().path(), &greeting);
    Ok(Response::builder()
        .status(reply.status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(reply.body))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_answers_the_greeting() {
        assert_eq!(respond("GET", "/", "hi"), Reply::new(200, "hi\n"));
    }

    #[test]
    fn hello_names_its_guest() {
        assert_eq!(
            respond("GET", "/hello/world", "hi"),
            Reply::new(200, "hello, world!\n")
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(respond("GET", "/nope", "hi").status, 404);
        assert_eq!(respond("POST", "/", "hi").status, 405);
    }
}
