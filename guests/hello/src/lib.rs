//! Minimal `wasi:http/proxy` component used for benchmarks.
//!
//! Every request gets `200`, `content-type: text/plain` and a body of
//! `$GREETING\n` (or `hello from hearth\n` when the variable is unset).

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

wasi::http::proxy::export!(Component);

const DEFAULT_BODY: &[u8] = b"hello from hearth\n";

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::new();
        let _ = headers.append("content-type", b"text/plain");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("outgoing body");
        ResponseOutparam::set(response_out, Ok(response));

        let greeting = std::env::var("GREETING").ok().map(|mut g| {
            g.push('\n');
            g
        });
        let bytes = match &greeting {
            Some(g) => g.as_bytes(),
            None => DEFAULT_BODY,
        };

        {
            let stream = body.write().expect("body stream");
            for chunk in bytes.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
            // `stream` is a child of `body` and must be dropped before finish.
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
