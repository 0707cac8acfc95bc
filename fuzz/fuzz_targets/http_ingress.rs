//! Fuzz target `http-ingress`: arbitrary bytes from a client on one connection to the
//! ingress, served by `hearth_http::serve_io` (the ingress's own per-connection path: its
//! HTTP/1.1 and HTTP/2 builder settings, client limits, header watchdog and router) in front
//! of a real deployed workload: the `hello` guest at `/` on any host and at
//! `hello.localhost/api` with a small `maxRequestBytes`.
//!
//! The client writes the input, closes its sending side and reads until the server closes.
//! Checks: no panic; the connection ends (a response and a close, or a close) within a few
//! seconds; what comes back is HTTP (a status line, or HTTP/2 frames after the preface); and
//! a first request whose head carries both `Content-Length` and `Transfer-Encoding` gets one
//! `400` and nothing after it: the bytes behind it are never read as another request.

#![no_main]

use hearth_http::{Deployed, ServeOptions, serve_io};
use hearth_runtime::Workloads;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest a connection may take to end once the client has sent everything.
const BUDGET: Duration = Duration::from_secs(5);

struct Harness {
    tokio: tokio::runtime::Runtime,
    router: Arc<Deployed>,
    options: ServeOptions,
    _workloads: Workloads,
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let router = Arc::clone(&h.router);
    let response = h.tokio.block_on(async {
        let serve = serve_io(server, router, &h.options);
        let talk = async {
            // The server may close before reading everything: a failed write is an answer.
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut response = Vec::new();
            let _ = client.read_to_end(&mut response).await;
            response
        };
        tokio::time::timeout(BUDGET, async { tokio::join!(serve, talk).1 }).await
    });
    let Ok(response) = response else {
        panic!("the connection did not end within {BUDGET:?} of the client's close");
    };
    check(data, &response);
});

fn check(request: &[u8], response: &[u8]) {
    if response.is_empty() {
        return;
    }
    let h2 = request.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    if h2 {
        // The server's first frame is its SETTINGS (type 4) on stream 0.
        assert!(response.len() >= 9, "a short HTTP/2 answer: {response:?}");
        assert_eq!(response[3], 4, "HTTP/2 answers start with SETTINGS");
        return;
    }
    assert!(
        response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
        "not an HTTP/1 response: {:?}",
        String::from_utf8_lossy(&response[..response.len().min(200)])
    );
    if framed_twice(request) {
        let text = String::from_utf8_lossy(response);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "a head with Content-Length and Transfer-Encoding got: {text}"
        );
        let answers = text.matches("HTTP/1.1 ").count() + text.matches("HTTP/1.0 ").count();
        assert_eq!(
            answers, 1,
            "after refusing a twice-framed head, nothing more: {text}"
        );
    }
}

/// Whether the first request is a complete, well-formed head with both framing headers.
fn framed_twice(request: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(request) {
        Ok(httparse::Status::Complete(_)) => {
            let has = |name: &str| {
                req.headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
            };
            req.version == Some(1) && has("content-length") && has("transfer-encoding")
        }
        _ => false,
    }
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(setup)
}

fn setup() -> Harness {
    let hello = hearth_fuzz::guest("hello.wasm");
    let manifest = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: ingress\nspec:\n  components:\n    - name: root\n      image: {hello}\n      http: {{ path: / }}\n      limits: {{ timeoutMs: 2000 }}\n    - name: api\n      image: {hello}\n      http: {{ host: hello.localhost, path: /api }}\n      limits: {{ timeoutMs: 2000, maxRequestBytes: 64 }}\n",
        hello = hello.display()
    );
    let deployed = hearth_fuzz::deploy(&manifest, 64);
    Harness {
        tokio: deployed.tokio,
        router: Arc::new(Deployed::new(vec![deployed.running])),
        options: ServeOptions::default(),
        _workloads: deployed.workloads,
    }
}
