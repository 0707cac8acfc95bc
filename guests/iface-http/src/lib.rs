//! HTTP component exercising `wasi:config`, `wasi:logging` and `wasmcloud:messaging/consumer`.
//!
//! - `GET /config/<key>`: `200 <value>`, or `404 unset`; `GET /config`: `key=value` lines.
//! - `GET /log/<level>?msg=<text>`: logs `text` at `level` with context `iface-http`.
//! - `GET /publish/<subject>?body=<text>`: publishes; `200 published`, or `502 <error>`.
//! - `GET /request/<subject>?body=<text>&timeout=<ms>`: `200 <reply body>`, or `502 <error>`.
//!
//! Query values are percent-decoded.

wit_bindgen::generate!({
    world: "hearth-test:iface-http/imports",
    generate_all,
    path: [
        "../../crates/interfaces/wit/deps/config.wit",
        "../../crates/interfaces/wit/deps/logging.wit",
        "../../crates/interfaces/wit/deps/messaging.wit",
        "wit",
    ],
});

use wasi::config::store as config;
use wasi::logging::logging::{self, Level};
use wasmcloud::messaging::consumer;
use wasmcloud::messaging::types::BrokerMessage;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| -> Option<String> {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| percent_decode(v))?
        })
    };
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').collect();
    match segments.as_slice() {
        ["config"] => match config::get_all() {
            Ok(all) => {
                let lines: String = all.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                text(StatusCode::OK, lines)
            }
            Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e:?}\n")),
        },
        ["config", key] => match config::get(key) {
            Ok(Some(value)) => text(StatusCode::OK, value),
            Ok(None) => text(StatusCode::NOT_FOUND, "unset".into()),
            Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e:?}\n")),
        },
        ["log", level] => {
            let level = match *level {
                "trace" => Level::Trace,
                "debug" => Level::Debug,
                "info" => Level::Info,
                "warn" => Level::Warn,
                "error" => Level::Error,
                "critical" => Level::Critical,
                other => return text(StatusCode::BAD_REQUEST, format!("no level `{other}`\n")),
            };
            logging::log(level, "iface-http", &param("msg").unwrap_or_default());
            text(StatusCode::OK, "logged\n".into())
        }
        ["publish", subject] => {
            let message = BrokerMessage {
                subject: subject.to_string(),
                body: param("body").unwrap_or_default().into_bytes(),
                reply_to: None,
            };
            match consumer::publish(&message) {
                Ok(()) => text(StatusCode::OK, "published\n".into()),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            }
        }
        ["request", subject] => {
            let body = param("body").unwrap_or_default().into_bytes();
            let timeout = param("timeout")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1000);
            match consumer::request(subject, &body, timeout) {
                Ok(reply) => text(
                    StatusCode::OK,
                    String::from_utf8_lossy(&reply.body).into_owned(),
                ),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such route\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder().status(status).body(Body::from(body))?)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}
