//! The ingress's limits on a client, each answered the way clients expect; slowloris
//! connections and an HTTP/2 rapid-reset burst do not stop the host serving others.

use crate::support::{Hearth, TempDir, wasm, workload};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A host serving the faults guest at `/`, whose bodies may be at most 1,000 bytes.
fn faults_host(tag: &str, extra: &[&str]) -> (TempDir, Hearth) {
    let dir = TempDir::new(tag);
    let manifest = dir.write(
        "w.yaml",
        workload(
            "faults",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ path: / }}\n      limits: {{ maxRequestBytes: 1000 }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start_with(&[&manifest], extra);
    (dir, host)
}

/// A connection to `to` from the loopback address `from` (the host counts connections
/// per client address).
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::from(from), 0).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// Everything the server sends until it closes, or until `within` passes; and whether it
/// closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let (bytes, closed) = read_until_closed_bytes(stream, within);
    (String::from_utf8_lossy(&bytes).into_owned(), closed)
}

/// Reads one response (sized or chunked) off a kept-alive connection.
fn read_response(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let mut next = |got: &mut Vec<u8>| {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed mid-response");
        got.push(byte[0]);
    };
    while !got.ends_with(b"\r\n\r\n") {
        next(&mut got);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        // Bodies here are small text: read to the last chunk.
        while !got.ends_with(b"\r\n0\r\n\r\n") {
            next(&mut got);
        }
    } else {
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: ")?.trim().parse().ok())
            .unwrap_or(0);
        for _ in 0..length {
            next(&mut got);
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {answer:?}"))
}

/// Sends `raw` on a fresh connection and reads the answer to the close.
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(raw).unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(closed, "the connection stayed open after: {answer}");
    answer
}

#[test]
fn each_client_limit_is_answered_the_way_clients_expect() {
    let (_dir, host) = faults_host(
        "client-limits",
        &[
            "--max-header-bytes",
            "8192",
            "--max-headers",
            "20",
            "--header-timeout",
            "1",
            "--idle-timeout",
            "2",
        ],
    );
    let addr = host.http;

    // Header size and count: 431.
    let big = format!(
        "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(status(&exchange(addr, big.as_bytes())), 431);
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /ok HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(status(&exchange(addr, many.as_bytes())), 431);
    let fine: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fine = format!("GET /ok HTTP/1.1\r\nHost: x\r\n{fine}Connection: close\r\n\r\n");
    assert_eq!(status(&exchange(addr, fine.as_bytes())), 200);

    // Request body per component: a declared length over it is refused before any
    // instance starts; a chunked body that streams past it is cut off, and still 413.
    let within = host.send("POST", "x", "/drain", &[b'a'; 1000]);
    assert_eq!(
        (within.status, within.text()),
        (200, "read 1000 bytes\n".into())
    );
    let declared = host.send("POST", "x", "/drain", &[b'a'; 1001]);
    assert_eq!(declared.status, 413, "{}", declared.text());
    let chunk = format!("3e8\r\n{}\r\n", "b".repeat(1000));
    let chunked = format!(
        "POST /drain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let answer = exchange(addr, chunked.as_bytes());
    assert_eq!(status(&answer), 413, "{answer}");

    // A head that stops coming: 408 after the header timeout, then the close.
    let mut slow = TcpStream::connect(addr).unwrap();
    let began = Instant::now();
    slow.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    let took = began.elapsed();
    assert!(closed && status(&answer) == 408, "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // A connection that never sends a byte gets the same.
    let mut silent = TcpStream::connect(addr).unwrap();
    let (answer, closed) = read_until_closed(&mut silent, Duration::from_secs(10));
    assert!(closed && status(&answer) == 408, "{answer}");

    // Keep-alive: a second request within the idle timeout is served on the same
    // connection; then, idle, it is closed without a word.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(status(&read_response(&mut kept)), 200);
    std::thread::sleep(Duration::from_millis(1200));
    kept.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        status(&read_response(&mut kept)),
        200,
        "past the header timeout but not the idle one"
    );
    let idle_from = Instant::now();
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(10));
    let idle = idle_from.elapsed();
    assert!(closed && answer.is_empty(), "{answer:?}");
    assert!(
        idle >= Duration::from_millis(1800) && idle < Duration::from_secs(6),
        "closed after {idle:?} idle"
    );
}

#[test]
fn connections_over_the_limits_are_refused_with_503_and_retry_after() {
    let (_dir, host) = faults_host(
        "connection-limits",
        &[
            "--max-connections",
            "4",
            "--max-connections-per-client",
            "2",
        ],
    );
    let addr = host.http;
    // Each held connection is served once, so it is known to be accepted (two workers
    // accept in any order) before the next one comes.
    let held = |from: [u8; 4]| -> TcpStream {
        let mut stream = connect_from(from, addr);
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(status(&read_response(&mut stream)), 200);
        stream
    };
    let held_a: Vec<TcpStream> = (0..2).map(|_| held([127, 0, 0, 2])).collect();
    let mut third = connect_from([127, 0, 0, 2], addr);
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(5));
    assert!(closed, "{answer}");
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("too many connections from one client"),
        "{answer}"
    );

    let held_b: Vec<TcpStream> = (0..2).map(|_| held([127, 0, 0, 3])).collect();
    let mut fifth = connect_from([127, 0, 0, 4], addr);
    let (answer, _) = read_until_closed(&mut fifth, Duration::from_secs(5));
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");

    // A place given back is a place to take.
    drop(held_a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from([127, 0, 0, 2], addr);
        again
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        // A refusal may reach this client as a reset: its request was never read.
        let (answer, _) = read_until_closed(&mut again, Duration::from_secs(5));
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held_b);
}

#[test]
fn a_request_framed_two_ways_is_refused_and_its_connection_closed() {
    let (_dir, host) = faults_host("smuggling", &[]);
    // Chunked says the body ends at once; Content-Length would have it swallow the start of
    // the next request. A front proxy and a server that split the stream differently let a
    // request through that the proxy never saw, so such a request is refused outright (as
    // Envoy does), and nothing after it on the connection is read.
    let answer = exchange(
        host.http,
        b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /count HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    // Either order of the two headers, on a kept-alive connection after a good request.
    let mut stream = TcpStream::connect(host.http).unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(status(&read_response(&mut stream)), 200);
    stream
        .write_all(b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(closed && status(&answer) == 400, "{answer}");
    let stats = host.admin_get("/v1/workloads/faults").body;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        stats["components"][0]["stats"]["requests"], 1,
        "only the good request reached the guest: {stats}"
    );
}

#[test]
fn two_thousand_slowloris_connections_do_not_delay_a_normal_request() {
    let (_dir, host) = faults_host("slowloris", &["--header-timeout", "4"]);
    let addr = host.http;
    // 500 from each of four addresses, under the default per-client limit of 1,024: each
    // sends the start of a head and trickles a header line now and then.
    let began = Instant::now();
    let mut slow: Vec<TcpStream> = (0..2000)
        .map(|i| {
            let mut s = connect_from([127, 0, 0, 2 + (i % 4) as u8], addr);
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    eprintln!("2,000 half-open connections in {:?}", began.elapsed());
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(format!("X-Trickle-{round}: 1\r\n").as_bytes());
        }
        let sent = Instant::now();
        let answer = host.get("x", "/ok");
        let took = sent.elapsed();
        assert_eq!(answer.status, 200);
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("a normal request under 2,000 slowloris connections: worst {worst:?} of 3");
    assert!(worst < Duration::from_secs(1), "took {worst:?}");
    // Trickling does not extend the header timeout: every one is answered 408 and closed.
    let wait = Duration::from_secs(6).saturating_sub(began.elapsed());
    std::thread::sleep(wait);
    let mut timed_out = 0;
    for s in &mut slow {
        let (answer, closed) = read_until_closed(s, Duration::from_secs(5));
        if closed && answer.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 2000, "every slowloris connection ends in 408");
}

/// One raw HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// Reads frames until the server closes or `within` passes; returns (type, payload) pairs.
fn read_frames(stream: &mut TcpStream, within: Duration) -> Vec<(u8, Vec<u8>)> {
    let (raw, _) = read_until_closed_bytes(stream, within);
    let mut frames = Vec::new();
    let mut at = 0;
    while raw.len() >= at + 9 {
        let len = u32::from_be_bytes([0, raw[at], raw[at + 1], raw[at + 2]]) as usize;
        if raw.len() < at + 9 + len {
            break;
        }
        frames.push((raw[at + 3], raw[at + 9..at + 9 + len].to_vec()));
        at += 9 + len;
    }
    frames
}

fn read_until_closed_bytes(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

#[test]
fn an_http2_rapid_reset_burst_is_cut_off_and_the_host_keeps_serving() {
    let (_dir, host) = faults_host("rapid-reset", &[]);
    let addr = host.http;
    // The server's settings name the stream limit.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe.write_all(H2_PREFACE).unwrap();
    probe.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    let settings = read_frames(&mut probe, Duration::from_millis(500));
    let advertised = settings
        .iter()
        .filter(|(kind, _)| *kind == SETTINGS)
        .flat_map(|(_, p)| p.chunks(6))
        .find(|s| s.len() == 6 && s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(advertised, Some(100), "SETTINGS_MAX_CONCURRENT_STREAMS");

    // The attack: a request opened and at once cancelled, 20,000 times, in one stream of
    // bytes. (HPACK: GET, http, /, and `:authority: x` as a literal.)
    let block = [0x82, 0x86, 0x84, 0x41, 0x01, b'x'];
    let mut burst = H2_PREFACE.to_vec();
    burst.extend(frame(SETTINGS, 0, 0, &[]));
    for i in 0..20_000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, 0x5, id, &block));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let mut attacker = TcpStream::connect(addr).unwrap();
    let writer = {
        let mut attacker = attacker.try_clone().unwrap();
        std::thread::spawn(move || attacker.write_all(&burst).is_ok())
    };
    // Meanwhile, and after, a normal client is served promptly.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let sent = Instant::now();
        assert_eq!(host.get("x", "/ok").status, 200);
        worst = worst.max(sent.elapsed());
    }
    let frames = read_frames(&mut attacker, Duration::from_secs(10));
    let _ = writer.join();
    let goaway = frames.iter().find(|(kind, _)| *kind == GOAWAY);
    let code = goaway.map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
    let stats: serde_json::Value =
        serde_json::from_str(&host.admin_get("/v1/workloads/faults").body).unwrap();
    eprintln!(
        "rapid reset: GOAWAY code {code:?}; guest invocations {}; normal request worst {worst:?}",
        stats["components"][0]["stats"]["requests"]
    );
    assert_eq!(code, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    assert!(worst < Duration::from_secs(1), "took {worst:?}");
    assert_eq!(host.get("x", "/ok").status, 200);
}
