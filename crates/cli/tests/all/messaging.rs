//! `wasmcloud:messaging` end to end: an HTTP component publishes and requests, a subscribed
//! handler component answers on a fresh instance per message, over the in-memory broker and
//! over a real `nats-server`; NATS going away and coming back; deploy-time errors.

use crate::servers::{Kind, Server};
use crate::support::{Hearth, TempDir, run_expecting_failure, wasm};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A workload: `iface-http` at `/`, `msg-handler` subscribed to `greet.*`, and `hello` at
/// `/hello`; `interfaces` is the YAML of `spec.hostInterfaces` (may be empty).
fn manifest(name: &str, host: &str, interfaces: &str) -> String {
    format!(
        r#"apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: {name}
spec:
{interfaces}
  components:
    - name: api
      image: {api}
      http: {{host: {host}, path: /}}
    - name: handler
      image: {handler}
      subscriptions: ["greet.*"]
      config: {{greeting: hi}}
    - name: hello
      image: {hello}
      http: {{host: {host}, path: /hello}}
"#,
        api = wasm("iface_http"),
        handler = wasm("msg_handler"),
        hello = wasm("hello"),
    )
}

fn nats_interfaces(url: &str) -> String {
    format!(
        "  hostInterfaces:\n    - interface: wasmcloud:messaging/consumer\n      backend: nats\n      config: {{url: \"{url}\"}}\n"
    )
}

/// Polls `path` until it answers `status`, returning the last body.
fn eventually(host: &Hearth, vhost: &str, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let resp = host.get(vhost, path);
        if resp.status == status {
            return resp.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: still {} {:?} after {within:?}",
            resp.status,
            resp.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn memory_broker_request_reply_reaches_a_fresh_handler() {
    let dir = TempDir::new("msg-memory");
    let m = dir.write("w.yaml", manifest("msgmem", "msg.test", ""));
    let host = Hearth::start(&[&m]);

    let resp = host.get("msg.test", "/request/greet.alice?body=alice");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body, "hi, alice");
    // The handler's wasi:logging record, with workload, component, level and context.
    let line = host.wait_for_log(
        &["handled greet.alice: alice", "\"workload\":\"msgmem\""],
        Duration::from_secs(5),
    );
    assert!(line.contains("\"component\":\"handler\""), "{line}");
    assert!(line.contains("\"level\":\"INFO\""), "{line}");
    assert!(line.contains("\"context\":\"msg-handler\""), "{line}");

    // Nobody subscribed: an error value, not a hang.
    let resp = host.get("msg.test", "/request/nobody.here?timeout=300");
    assert_eq!(resp.status, 502);
    assert!(
        resp.body.contains("no responders on `nobody.here`"),
        "{}",
        resp.body
    );

    // A handler that returns Err or traps never replies: the requester times out, the
    // host keeps serving, and the failures are counted.
    for subject in ["greet.fail", "greet.trap"] {
        let resp = host.get("msg.test", &format!("/request/{subject}?timeout=300"));
        assert_eq!(resp.status, 502, "{}", resp.body);
        assert!(resp.body.contains("no reply"), "{}", resp.body);
    }
    assert_eq!(host.get("msg.test", "/hello").status, 200);
    let w = host.workloads();
    let handler = w[0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "handler")
        .unwrap()
        .clone();
    assert!(
        handler["stats"]["requests"].as_u64().unwrap() >= 3,
        "{handler}"
    );
    assert!(
        handler["stats"]["failed"].as_u64().unwrap() >= 2,
        "{handler}"
    );

    // Many requests at once all get their own reply.
    let replies: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let host = &host;
                s.spawn(move || host.get("msg.test", &format!("/request/greet.n{i}?body={i}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().body).collect()
    });
    for (i, body) in replies.iter().enumerate() {
        assert_eq!(body, &format!("hi, {i}"));
    }

    // Publishing with a wildcard is refused with the error value.
    let resp = host.get("msg.test", "/publish/greet.*");
    assert_eq!(resp.status, 502);
    assert!(resp.body.contains("invalid subject"), "{}", resp.body);
}

/// A bare NATS client speaking the text protocol, to watch and drive the real server.
struct Probe {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Probe {
    fn connect(port: u16) -> Self {
        let writer = TcpStream::connect(("127.0.0.1", port)).unwrap();
        writer
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut probe = Self {
            reader: BufReader::new(writer.try_clone().unwrap()),
            writer,
        };
        let info = probe.line();
        assert!(info.starts_with("INFO"), "{info}");
        probe.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
        probe.sync();
        probe
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    fn send(&mut self, s: &str) {
        self.writer.write_all(s.as_bytes()).unwrap();
    }

    /// Round trip to the server, so everything sent before is in effect.
    fn sync(&mut self) {
        self.send("PING\r\n");
        loop {
            let line = self.line();
            if line == "PONG" {
                return;
            }
            assert!(!line.starts_with("-ERR"), "{line}");
        }
    }

    fn subscribe(&mut self, subject: &str, sid: u32) {
        self.send(&format!("SUB {subject} {sid}\r\n"));
        self.sync();
    }

    /// Publishes `body` to `subject`, with `reply` as its reply subject unless empty.
    fn publish(&mut self, subject: &str, reply: &str, body: &str) {
        let reply = if reply.is_empty() {
            String::new()
        } else {
            format!("{reply} ")
        };
        self.send(&format!(
            "PUB {subject} {reply}{}\r\n{body}\r\n",
            body.len()
        ));
    }

    /// The next message: (subject, body).
    fn next(&mut self) -> (String, String) {
        loop {
            let line = self.line();
            if let Some(message) = self.message(&line) {
                return message;
            }
        }
    }

    /// The next message within `wait`, if one comes.
    fn try_next(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + wait;
        loop {
            if self.reader.buffer().is_empty() {
                let left = deadline.checked_duration_since(Instant::now())?;
                let stream = self.reader.get_ref();
                stream
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                let ready = stream.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                if !ready {
                    return None;
                }
            }
            let line = self.line();
            if let Some(message) = self.message(&line) {
                return Some(message);
            }
        }
    }

    /// The message `line` starts (its body read too), answering a `PING` on the way.
    fn message(&mut self, line: &str) -> Option<(String, String)> {
        if line == "PING" {
            self.send("PONG\r\n");
            return None;
        }
        let rest = line.strip_prefix("MSG ")?;
        let parts: Vec<&str> = rest.split(' ').collect();
        let len: usize = parts.last().unwrap().parse().unwrap();
        let mut body = vec![0; len + 2];
        self.reader.read_exact(&mut body).unwrap();
        body.truncate(len);
        Some((parts[0].to_string(), String::from_utf8(body).unwrap()))
    }
}

#[test]
fn nats_carries_publish_request_and_subscriptions_and_survives_an_outage() {
    let mut nats = Server::start(Kind::Nats);
    let dir = TempDir::new("msg-nats");
    let m = dir.write(
        "w.yaml",
        manifest("msgnats", "nats.test", &nats_interfaces(&nats.url())),
    );
    let host = Hearth::start(&[&m]);
    let mut probe = Probe::connect(nats.port);
    probe.subscribe("audit.>", 1);

    // Guest publish → NATS → the subscribed handler → its publish → NATS → the probe.
    let resp = host.get("nats.test", "/publish/greet.bob?body=bob");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(probe.next(), ("audit.greet.bob".into(), "bob".into()));

    // A request from outside hearth is answered by the handler.
    probe.subscribe("_INBOX.probe", 2);
    probe.publish("greet.carol", "_INBOX.probe", "carol");
    let mut got = probe.next();
    if got.0.starts_with("audit.") {
        got = probe.next();
    }
    assert_eq!(got, ("_INBOX.probe".into(), "hi, carol".into()));

    // A guest request through NATS.
    let resp = host.get("nats.test", "/request/greet.dave?body=dave");
    assert_eq!((resp.status, resp.body.as_str()), (200, "hi, dave"));

    // NATS goes away: the guest gets the error value, the host serves other routes.
    drop(probe);
    nats.kill();
    let body = eventually(
        &host,
        "nats.test",
        "/publish/greet.x",
        502,
        Duration::from_secs(10),
    );
    assert!(body.contains("not connected"), "{body}");
    assert_eq!(host.get("nats.test", "/hello").status, 200);

    // NATS returns: the client reconnects and resubscribes, the handler answers again.
    nats.restart();
    let body = eventually(
        &host,
        "nats.test",
        "/request/greet.eve?body=eve&timeout=500",
        200,
        Duration::from_secs(20),
    );
    assert_eq!(body, "hi, eve");
}

#[test]
fn unreachable_nats_fails_the_deploy_naming_the_field() {
    let port = crate::support::free_port();
    let dir = TempDir::new("msg-down");
    let m = dir.write(
        "w.yaml",
        manifest(
            "msgdown",
            "down.test",
            &nats_interfaces(&format!("nats://127.0.0.1:{port}")),
        ),
    );
    let err = run_expecting_failure(&m);
    assert!(err.contains("spec.hostInterfaces[0].config.url"), "{err}");
    assert!(err.contains("cannot reach the NATS server"), "{err}");
}

#[test]
fn subscriptions_need_a_handler_export_and_valid_subjects() {
    let dir = TempDir::new("msg-bad");
    let yaml = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: bad\nspec:\n  components:\n    - name: h\n      image: {}\n      subscriptions: [\"ok.subject\"]\n",
        wasm("hello")
    );
    let m = dir.write("a.yaml", yaml);
    let (code, _, err) = crate::support::hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("spec.components[0].subscriptions: `")
            && err.contains("does not export `wasmcloud:messaging/handler`, which a component with `subscriptions` must"),
        "{err}"
    );

    let yaml = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: bad\nspec:\n  hostInterfaces:\n    - interface: wasmcloud:messaging\n      backend: kafka\n  components:\n    - name: h\n      image: {}\n      subscriptions: [\"a..b\", \"a.>.c\"]\n",
        wasm("msg_handler")
    );
    let m = dir.write("b.yaml", yaml);
    let (code, _, err) = crate::support::hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("spec.components[0].subscriptions[0]"), "{err}");
    assert!(err.contains("spec.components[0].subscriptions[1]"), "{err}");
}

/// With several HTTP workers, a host subscribes once per worker in a queue group of its
/// own: each message is handled once per host, on one worker, and every host gets all of
/// them (no group shared between hosts).
#[test]
fn nats_deliveries_spread_over_workers_reach_each_host_once() {
    let nats = Server::start(Kind::Nats);
    let dir = TempDir::new("msg-spread");
    let m = dir.write(
        "w.yaml",
        manifest("msgspread", "spread.test", &nats_interfaces(&nats.url())),
    );
    let hosts = [
        Hearth::start_with(&[&m], &["--workers", "2"]),
        Hearth::start_with(&[&m], &["--workers", "2"]),
    ];
    let mut probe = Probe::connect(nats.port);
    probe.subscribe("audit.>", 1);
    // Both hosts are subscribed once a request from each is answered.
    for host in &hosts {
        let body = eventually(
            host,
            "spread.test",
            "/request/greet.ready?body=x&timeout=500",
            200,
            Duration::from_secs(10),
        );
        assert_eq!(body, "hi, x");
    }
    while probe.try_next(Duration::from_millis(300)).is_some() {}

    const N: usize = 40;
    for i in 0..N {
        probe.publish(&format!("greet.n{i}"), "", &format!("m{i}"));
    }
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.values().sum::<usize>() < 2 * N && Instant::now() < deadline {
        if let Some((subject, _)) = probe.try_next(Duration::from_secs(1)) {
            *seen.entry(subject).or_default() += 1;
        }
    }
    // Anything more would be a duplicate.
    while let Some((subject, _)) = probe.try_next(Duration::from_millis(500)) {
        *seen.entry(subject).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 2),
        "each message once per host: {seen:?}"
    );
}
