//! `wasi:http/proxy` component that misbehaves on request, for testing how
//! the host contains faulty guests. Dispatches on the request path (query
//! string ignored); see README.md for the list of routes.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Component;

wasi::http::proxy::export!(Component);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_default();
        let path = full.split('?').next().unwrap_or("");
        // Mounted under `/faults` in the hello example; tests mount it at the root.
        let path = path
            .strip_prefix("/faults")
            .filter(|p| !p.is_empty())
            .unwrap_or(path);

        match path {
            "/ok" => respond(response_out, 200, b"ok\n"),
            "/count" => {
                let n = COUNTER.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
                respond(response_out, 200, format!("{n}\n").as_bytes());
            }
            "/trap" => panic!("secret-internal-detail"),
            "/loop" => spin_forever(),
            "/oom" => exhaust_memory(),
            "/stack" => {
                let v = recurse_call_stack(black_box(0));
                respond(response_out, 200, format!("{v}\n").as_bytes());
            }
            "/shadow-stack" => {
                let v = recurse(black_box(0));
                respond(response_out, 200, format!("{v}\n").as_bytes());
            }
            "/scheme" => {
                let scheme = match request.scheme() {
                    Some(Scheme::Http) => "http".to_string(),
                    Some(Scheme::Https) => "https".to_string(),
                    Some(Scheme::Other(other)) => other,
                    None => "none".to_string(),
                };
                respond(response_out, 200, format!("{scheme}\n").as_bytes());
            }
            "/files" => {
                // A guest has no preopened directories: every path is out of reach.
                let tried = ["/etc/passwd", "/proc/self/environ", ".", "/"];
                let reached: Vec<&str> = tried
                    .iter()
                    .copied()
                    .filter(|p| std::fs::metadata(p).is_ok())
                    .collect();
                respond(
                    response_out,
                    200,
                    format!("reached: {reached:?}\n").as_bytes(),
                );
            }
            "/drain" => match drain(request) {
                Ok(n) => respond(response_out, 200, format!("read {n} bytes\n").as_bytes()),
                Err(why) => respond(response_out, 400, format!("body error: {why}\n").as_bytes()),
            },
            "/pollables" => {
                // Holds a million pollables at once: the host must stop this with an
                // error rather than grow its resource table without bound.
                let mut held = Vec::new();
                for _ in 0..1_000_000 {
                    held.push(wasi::clocks::monotonic_clock::subscribe_duration(
                        1_000_000_000,
                    ));
                }
                respond(
                    response_out,
                    200,
                    format!("held {}\n", held.len()).as_bytes(),
                );
            }
            "/log" => {
                println!("guest says hello on stdout");
                eprintln!("guest says hello on stderr");
                respond(response_out, 200, b"logged\n");
            }
            _ => {
                if let Some(ms) = path.strip_prefix("/sleep/") {
                    match ms.parse::<u64>() {
                        Ok(ms) => {
                            let ns = ms.saturating_mul(1_000_000);
                            wasi::clocks::monotonic_clock::subscribe_duration(ns).block();
                            respond(response_out, 200, format!("slept {ms}\n").as_bytes());
                        }
                        Err(_) => respond(response_out, 400, b"bad sleep duration\n"),
                    }
                } else if let Some(name) = path.strip_prefix("/env/") {
                    match std::env::var(name) {
                        Ok(mut v) => {
                            v.push('\n');
                            respond(response_out, 200, v.as_bytes());
                        }
                        Err(_) => respond(response_out, 404, b"unset\n"),
                    }
                } else {
                    respond(response_out, 404, b"no such fault\n");
                }
            }
        }
    }
}

fn spin_forever() -> ! {
    let mut x: u64 = 0;
    loop {
        black_box(&mut x);
        x = x.wrapping_add(1);
    }
}

fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = black_box(vec![0xA5u8; 1 << 20]);
        hoard.push(block);
        black_box(&mut hoard);
    }
}

/// Exhausts the wasm call stack itself: tiny frames, no locals in linear memory, and a result
/// that depends on the callee so the recursion cannot become a loop.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_call_stack(depth: u64) -> u64 {
    black_box(recurse_call_stack(black_box(depth + 1))) ^ depth
}

/// Exhausts the shadow stack in linear memory: 1 KiB frames that must live in memory.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[(depth as usize) % 1024] = depth as u8;
    let frame = black_box(frame);
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(frame[(depth as usize) % 1024] as u64)
}

/// Reads the whole request body; returns its length, or the error that cut it short.
fn drain(request: IncomingRequest) -> Result<u64, String> {
    let body = request.consume().map_err(|()| "no body".to_string())?;
    let stream = body.stream().map_err(|()| "no body stream".to_string())?;
    let mut total = 0u64;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => total += chunk.len() as u64,
            Err(wasi::io::streams::StreamError::Closed) => return Ok(total),
            Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                return Err(e.to_debug_string());
            }
        }
    }
}

fn respond(response_out: ResponseOutparam, status: u16, body_bytes: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let body = response.body().expect("outgoing body");
    ResponseOutparam::set(response_out, Ok(response));
    {
        let stream = body.write().expect("body stream");
        for chunk in body_bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}
