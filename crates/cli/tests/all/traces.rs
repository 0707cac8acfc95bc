//! OpenTelemetry traces, end to end: a host started with `--otlp-endpoint` exports its spans
//! (OTLP protobuf over HTTP) to a receiver in this test, which decodes them with the
//! OpenTelemetry protocol crate. The spans must link: an incoming `traceparent` is continued,
//! and the guest's outgoing `wasi:http` request carries its own span's `traceparent` to a real
//! server; a service's WIT call, the component instance it runs and that instance's outgoing
//! request are one trace, parent to child.

use crate::support::{Hearth, TempDir, send_with, wasm};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Spans received, in arrival order.
type Received = Arc<Mutex<Vec<Span>>>;
/// The path and `traceparent` of each request a server got.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An OTLP/HTTP receiver on loopback: decodes every `POST /v1/traces` body and answers `200`.
fn otlp_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let spans: Received = Arc::default();
    let sink = Arc::clone(&spans);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve_otlp(conn, &sink));
        }
    });
    (url, spans)
}

/// One keep-alive connection of the exporter: requests until it closes.
fn serve_otlp(conn: std::net::TcpStream, sink: &Received) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for resource in export.resource_spans {
            for scope in resource.scope_spans {
                sink.lock().unwrap().extend(scope.spans);
            }
        }
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

/// A real HTTP server on 127.0.0.2 (real egress) that records the `traceparent` of each
/// request by path.
fn upstream() -> (u16, Seen) {
    let server = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap_or(0);
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let mut traceparent = None;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("traceparent")
                {
                    traceparent = Some(value.trim().to_string());
                }
                line.clear();
            }
            log.lock().unwrap().push((path, traceparent));
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
            );
            // Read what else the client sends before closing, so the close is not a reset.
            let _ = conn.shutdown(std::net::Shutdown::Write);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
    });
    (port, seen)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `find` picks a span out of those received.
fn wait_span(spans: &Received, what: &str, find: impl Fn(&Span) -> bool) -> Span {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(span) = spans.lock().unwrap().iter().find(|s| find(s)) {
            return span.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no span {what} exported within 15 s; got {:#?}",
            spans
                .lock()
                .unwrap()
                .iter()
                .map(|s| &s.name)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn spans_link_an_incoming_request_its_guest_and_its_outgoing_request() {
    let (otlp, spans) = otlp_receiver();
    let (port, seen) = upstream();
    let dir = TempDir::new("traces");
    let web = dir.write(
        "web.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: web\nspec:\n  components:\n    - name: client\n      image: {}\n      http: {{ host: web.localhost, path: / }}\n      allowedHosts: [\"127.0.0.2:{port}\"]\n",
            wasm("http_client")
        ),
    );
    let cron = dir.write(
        "cron.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: cron\nspec:\n  components:\n    - name: job\n      image: {}\n      env: {{ PING_URL: \"http://127.0.0.2:{port}/cron\" }}\n      allowedHosts: [\"127.0.0.2:{port}\"]\n  service:\n    image: {}\n",
            wasm("cron_component"),
            wasm("cron_service")
        ),
    );
    let host = Hearth::start_env(
        &[&web, &cron],
        &["--otlp-endpoint", &otlp],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );

    // 1. An incoming traceparent is continued, and passed on to the real server.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let r = send_with(
        host.http,
        "GET",
        "web.localhost",
        &format!("/url?u=http%3A%2F%2F127.0.0.2%3A{port}%2Fweb"),
        &[(
            "traceparent".into(),
            format!("00-{trace_id}-{parent_id}-01"),
        )],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let server = wait_span(&spans, "for the incoming request", |s| {
        s.kind == 2 && attribute(s, "hearth.workload").as_deref() == Some("web")
    });
    assert_eq!(
        hex(&server.trace_id),
        trace_id,
        "the incoming trace goes on"
    );
    assert_eq!(hex(&server.parent_span_id), parent_id);
    assert_eq!(server.name, "GET /");
    assert_eq!(
        attribute(&server, "http.response.status_code").as_deref(),
        Some("200")
    );
    let outgoing = wait_span(&spans, "for the outgoing request", |s| {
        s.kind == 3 && s.parent_span_id == server.span_id
    });
    assert_eq!(outgoing.trace_id, server.trace_id);
    assert_eq!(
        attribute(&outgoing, "hearth.caller").as_deref(),
        Some("client")
    );
    let sent = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(path, _)| path == "/web")
        .and_then(|(_, tp)| tp.clone())
        .expect("the real server got a traceparent");
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", hex(&outgoing.span_id)),
        "the outgoing request carries its own span as the parent"
    );

    // 2. service → component → outgoing request: one trace.
    let call = wait_span(&spans, "for the service's WIT call", |s| {
        s.name == "call wasmcloud:example/cron@0.0.1.invoke" && s.parent_span_id.is_empty()
    });
    assert_eq!(
        attribute(&call, "hearth.caller").as_deref(),
        Some("service")
    );
    let invocation = wait_span(&spans, "for the component's invocation", |s| {
        s.parent_span_id == call.span_id
    });
    assert_eq!(invocation.trace_id, call.trace_id);
    assert_eq!(
        attribute(&invocation, "hearth.component").as_deref(),
        Some("job")
    );
    let ping = wait_span(&spans, "for the component's outgoing request", |s| {
        s.parent_span_id == invocation.span_id
    });
    assert_eq!(ping.trace_id, call.trace_id);
    assert_eq!(
        attribute(&ping, "url.full").as_deref(),
        Some(format!("http://127.0.0.2:{port}/cron").as_str())
    );
    let pinged = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/cron")
        .filter_map(|(_, tp)| tp.clone())
        .any(|tp| tp == format!("00-{}-{}-01", hex(&ping.trace_id), hex(&ping.span_id)));
    assert!(pinged, "the cron ping carried its span's traceparent");
    drop(host);
}

#[test]
fn without_an_endpoint_no_traceparent_is_added() {
    let (port, seen) = upstream();
    let dir = TempDir::new("notraces");
    let web = dir.write(
        "web.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: web\nspec:\n  components:\n    - name: client\n      image: {}\n      http: {{ host: web.localhost }}\n      allowedHosts: [\"127.0.0.2:{port}\"]\n",
            wasm("http_client")
        ),
    );
    let host = Hearth::start_env(&[&web], &[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]);
    let r = host.get(
        "web.localhost",
        &format!("/url?u=http%3A%2F%2F127.0.0.2%3A{port}%2Fplain"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[("/plain".to_string(), None)],
        "tracing is off: the request goes out as the guest wrote it"
    );
}
