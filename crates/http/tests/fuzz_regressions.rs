//! Inputs the `http-ingress` fuzz target found (kept in `fuzz/regressions/http-ingress/`),
//! replayed through `serve_io`, the ingress's per-connection path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_http::{Deployed, ServeOptions, serve_io};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request`, closes the sending side, and returns everything the server answered.
async fn exchange(request: &[u8]) -> String {
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let router = Arc::new(Deployed::new(Vec::new()));
    let options = ServeOptions::default();
    let talk = async {
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        answer
    };
    let ((), answer) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        tokio::join!(serve_io(server, router, &options), talk)
    })
    .await
    .expect("the connection ends");
    String::from_utf8_lossy(&answer).into_owned()
}

/// hyper skips empty lines before a request line; the ingress's check for a head framed by
/// both Content-Length and Transfer-Encoding took the first one for the end of the head and
/// let such a request through.
#[tokio::test]
async fn a_leading_empty_line_does_not_hide_a_head_framed_twice() {
    let input = include_bytes!(
        "../../../fuzz/regressions/http-ingress/leading-empty-line-hides-cl-and-te.http"
    );
    let answer = exchange(input).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");

    let answer = exchange(
        b"\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}
