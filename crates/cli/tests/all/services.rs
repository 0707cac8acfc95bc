//! Services and the per-workload virtual network, end to end with real guests: the seed's echo
//! server behind a published port, a stateful cache used over localhost, isolation between
//! workloads, the component/service rules, supervision with backoff, egress policy, and
//! outgoing HTTP to the service.

use crate::support::{Hearth, TempDir, free_port, wasm};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn manifest(name: &str, components: &str, service: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n{components}  service:\n{service}"
    )
}

fn service_status(host: &Hearth, workload: &str) -> Value {
    let all = host.workloads();
    all.as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == workload)
        .unwrap()["service"]
        .clone()
}

/// Polls the admin API until `pred` holds for the workload's service status.
pub(crate) fn wait_status(
    host: &Hearth,
    workload: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = service_status(host, workload);
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "service status never matched; last: {s}\nlogs:\n{}",
            host.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn listening_on(s: &Value, port: u16) -> bool {
    s["state"] == "running"
        && s["listening"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p == port))
}

#[test]
fn seed_echo_server_through_a_published_port() {
    let dir = TempDir::new("echo");
    let publish = free_port();
    let m = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: echo\nspec:\n  service:\n    image: {}\n    ports: [{{ port: 7070, publish: {publish} }}]\n",
            wasm("echo")
        ),
    );
    let host = Hearth::start(&[&m]);
    host.wait_for_log(
        &["Listening on 127.0.0.1:7070", r#""workload":"echo""#],
        Duration::from_secs(10),
    );
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", publish)).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msg = format!("hello {i} through the virtual network\n");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), msg);
    }
    // A larger payload exercises backpressure in both directions.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut c = TcpStream::connect(("127.0.0.1", publish)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = c.try_clone().unwrap();
    let to_send = big.clone();
    let sender = std::thread::spawn(move || writer.write_all(&to_send).unwrap());
    let mut back = vec![0; big.len()];
    c.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    assert!(back == big, "echoed bytes differ");
    host.wait_for_log(&["Accepted from: "], Duration::from_secs(5));
}

fn cache_workload(name: &str, host_route: &str) -> String {
    manifest(
        name,
        &format!(
            "    - name: web\n      image: {}\n      http: {{ host: {host_route} }}\n",
            wasm("cache_http")
        ),
        &format!(
            "    image: {}\n    ports: [{{ port: 6380 }}]\n",
            wasm("cache_service")
        ),
    )
}

#[test]
fn cache_state_persists_across_100_requests() {
    let dir = TempDir::new("cache");
    let m = dir.write("w.yaml", cache_workload("cache", "cache.localhost"));
    let host = Hearth::start(&[&m]);
    wait_status(&host, "cache", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    for i in 1..=100 {
        let r = host.get("cache.localhost", "/incr/hits");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, format!("INT {i}\n").as_str())
        );
    }
    assert_eq!(host.get("cache.localhost", "/get/hits").body, "VALUE 100\n");

    // `hearth status` shows the same through the admin API, as a table.
    let (code, table, err) =
        crate::support::hearth_cmd(&["status", "--admin", &host.admin.to_string()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("WORKLOAD  PART"), "{table}");
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        words(lines[1])[..6],
        [
            "cache",
            "web",
            "component",
            "ready",
            "cache.localhost/",
            "101"
        ],
        "{table}"
    );
    assert_eq!(
        words(lines[2])[..7],
        ["cache", "service", "service", "running", "6380", "-", "0"],
        "{table}"
    );
}

#[test]
fn two_workloads_with_the_same_service_port_stay_separate() {
    let dir = TempDir::new("isolation");
    let a = dir.write("a.yaml", cache_workload("alpha", "a.localhost"));
    let b = dir.write("b.yaml", cache_workload("beta", "b.localhost"));
    let host = Hearth::start(&[&a, &b]);
    for w in ["alpha", "beta"] {
        wait_status(&host, w, Duration::from_secs(10), |s| listening_on(s, 6380));
    }
    assert_eq!(host.get("a.localhost", "/set/who/alpha").body, "OK\n");
    assert_eq!(host.get("b.localhost", "/set/who/beta").body, "OK\n");
    assert_eq!(host.get("a.localhost", "/get/who").body, "VALUE alpha\n");
    assert_eq!(host.get("b.localhost", "/get/who").body, "VALUE beta\n");
    assert_eq!(host.get("b.localhost", "/incr/n").body, "INT 1\n");
    assert_eq!(host.get("a.localhost", "/get/n").body, "NIL\n");
}

fn probe_workload(dir: &TempDir, name: &str, allowed: &str) -> std::path::PathBuf {
    dir.write(
        &format!("{name}.yaml"),
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: probe\n      image: {}\n      http: {{ host: {name}.localhost }}\n      allowedHosts: {allowed}\n",
            wasm("tcp_client")
        ),
    )
}

#[test]
fn components_cannot_listen_and_closed_ports_refuse_at_once() {
    let dir = TempDir::new("rules");
    let m = probe_workload(&dir, "probe", "[]");
    let host = Hearth::start(&[&m]);
    let r = host.get("probe.localhost", "/listen/9000");
    assert_eq!(r.status, 403, "a component must not listen: {}", r.body);
    assert!(r.body.contains("PermissionDenied"), "{}", r.body);
    let started = Instant::now();
    let r = host.get("probe.localhost", "/connect/127.0.0.1/6999");
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("ConnectionRefused"), "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal must be immediate"
    );
    // The host's own loopback services are not reachable: the workload's loopback is its own.
    let r = host.get(
        "probe.localhost",
        &format!("/connect/127.0.0.1/{}", host.admin.port()),
    );
    assert_eq!(
        r.status, 502,
        "reached the host's admin API from a guest: {}",
        r.body
    );
}

#[test]
fn egress_is_denied_by_default_and_allowed_by_allowed_hosts() {
    // A real TCP server on the host, at a loopback address other than the workloads' own
    // 127.0.0.1, so reaching it is real egress subject to policy.
    let server = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut line);
                let _ = conn.write_all(b"pong from the real network\n");
            });
        }
    });
    let dir = TempDir::new("egress");
    let denied = probe_workload(&dir, "denied", "[]");
    let allowed = probe_workload(&dir, "allowed", &format!("[\"127.0.0.2:{port}\"]"));
    let host = Hearth::start(&[&denied, &allowed]);
    let r = host.get("denied.localhost", &format!("/connect/127.0.0.2/{port}"));
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("PermissionDenied"), "{}", r.body);
    let r = host.get("allowed.localhost", &format!("/connect/127.0.0.2/{port}"));
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "connected: pong from the real network\n")
    );
    // Only the listed port.
    let r = host.get(
        "allowed.localhost",
        &format!("/connect/127.0.0.2/{}", port.wrapping_add(1).max(1)),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    // Cloud metadata is never reachable.
    let r = host.get("allowed.localhost", "/connect/169.254.169.254/80");
    assert!(r.body.contains("PermissionDenied"), "{}", r.body);
}

fn crashy(dir: &TempDir, name: &str, env: &str, restart: &str, publish: u16) -> std::path::PathBuf {
    dir.write(
        &format!("{name}.yaml"),
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  service:\n    image: {}\n    env: {env}\n    ports: [{{ port: 7171, publish: {publish} }}]\n    restart: {restart}\n",
            wasm("crashy_service")
        ),
    )
}

#[test]
fn crashing_services_restart_with_growing_backoff_and_release_everything() {
    let dir = TempDir::new("crash");
    let publish = free_port();
    let m = crashy(
        &dir,
        "trapper",
        "{ MODE: trap, AFTER_MS: \"400\" }",
        "{}",
        publish,
    );
    let host = Hearth::start(&[&m]);
    wait_status(&host, "trapper", Duration::from_secs(10), |s| {
        listening_on(s, 7171)
    });

    // A client of the current incarnation sees EOF or a reset when it dies, never a hang.
    let mut client = TcpStream::connect(("127.0.0.1", publish)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut hello = [0u8; 6];
    client.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello\n");
    let waited = Instant::now();
    let mut rest = Vec::new();
    let end = client.read_to_end(&mut rest);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    assert!(
        waited.elapsed() < Duration::from_secs(3),
        "the dead incarnation's client hung"
    );

    // It comes back on the same port, again and again, each time after a longer pause.
    let s = wait_status(&host, "trapper", Duration::from_secs(10), |s| {
        s["restarts"].as_u64() >= Some(3)
    });
    assert!(
        s["lastExit"].as_str().unwrap().starts_with("trapped: "),
        "{s}"
    );
    wait_status(&host, "trapper", Duration::from_secs(10), |s| {
        listening_on(s, 7171)
    });
    let backoffs: Vec<u64> = host
        .logs()
        .iter()
        .filter(|l| l.contains("restarting after backoff"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["backoff_ms"].as_u64())
        .collect();
    assert!(
        backoffs.len() >= 3 && backoffs[..3] == [100, 200, 400],
        "{backoffs:?}"
    );
    host.wait_for_log(&["crashy listening on 7171"], Duration::from_secs(1));
}

#[test]
fn a_non_zero_exit_is_a_crash_and_a_clean_exit_completes() {
    let dir = TempDir::new("exits");
    let failing = crashy(
        &dir,
        "failing",
        "{ MODE: exit-code, EXIT_CODE: \"3\", AFTER_MS: \"50\" }",
        "{ maxRestarts: 2 }",
        free_port(),
    );
    let clean = crashy(
        &dir,
        "clean",
        "{ MODE: clean, AFTER_MS: \"50\" }",
        "{ policy: on-failure }",
        free_port(),
    );
    let host = Hearth::start(&[&failing, &clean]);
    let s = wait_status(&host, "failing", Duration::from_secs(10), |s| {
        s["state"] == "failed"
    });
    assert_eq!(s["restarts"], 2, "{s}");
    assert_eq!(s["lastExit"], "exited with status 3");
    let s = wait_status(&host, "clean", Duration::from_secs(10), |s| {
        s["state"] == "completed"
    });
    assert_eq!(s["restarts"], 0, "{s}");
    assert_eq!(s["lastExit"], "exited with status 0");
    assert_eq!(
        s["listening"],
        serde_json::json!([]),
        "a completed service holds no ports"
    );
}

/// The `web` workload: the `http_client` component (routed as `route`, YAML flow mapping)
/// and the `http_service` service on port 8081; started, and waited for until it listens.
fn web_host(dir: &TempDir, route: &str) -> Hearth {
    let m = dir.write(
        "web.yaml",
        manifest(
            "web",
            &format!(
                "    - name: client\n      image: {}\n      http: {route}\n",
                wasm("http_client")
            ),
            &format!("    image: {}\n", wasm("http_service")),
        ),
    );
    let host = Hearth::start(&[&m]);
    wait_status(&host, "web", Duration::from_secs(10), |s| {
        listening_on(s, 8081)
    });
    host
}

#[test]
fn outgoing_http_to_localhost_reaches_the_service() {
    let dir = TempDir::new("httpsvc");
    let host = web_host(&dir, "{}");
    let r = host.get("x", "/via/8081/hello");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "service saw GET /hello (request #1)\n")
    );
    let r = host.get("x", "/via-ip/8081/again");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "service saw GET /again (request #2)\n")
    );
    let r = host.get("x", "/via/8082/nothing-here");
    assert_eq!(r.status, 502, "{}", r.body);
    // Not to the outside world unless allowed.
    let r = host.get("x", "/url?u=http%3A%2F%2Fexample.com%2F");
    assert_eq!(r.status, 502, "{}", r.body);
}

#[test]
fn outgoing_http_elsewhere_follows_allowed_hosts() {
    // A real HTTP server on the host's loopback beyond 127.0.0.1: real egress.
    let server = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nreal server\n",
            );
            // Whatever the client still sends (the end of a chunked body) is
            // read before closing: closing with unread bytes sends a reset,
            // which can reach the client before it has read the answer.
            let _ = conn.shutdown(std::net::Shutdown::Write);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
    });
    let dir = TempDir::new("httpegress");
    let client = |name: &str, allowed: &str| {
        dir.write(
            &format!("{name}.yaml"),
            format!(
                "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: client\n      image: {}\n      http: {{ host: {name}.localhost }}\n      allowedHosts: {allowed}\n",
                wasm("http_client")
            ),
        )
    };
    let denied = client("denied", "[]");
    let allowed = client("allowed", &format!("[\"127.0.0.2:{port}\"]"));
    let host = Hearth::start(&[&denied, &allowed]);
    let url = format!("/url?u=http%3A%2F%2F127.0.0.2%3A{port}%2F");
    let r = host.get("denied.localhost", &url);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    let r = host.get("allowed.localhost", &url);
    assert_eq!((r.status, r.body.as_str()), (200, "real server\n"));
}

#[test]
fn stopping_the_host_stops_services() {
    let dir = TempDir::new("stopsvc");
    let m = crashy(&dir, "forever", "{ MODE: forever }", "{}", free_port());
    let mut host = Hearth::start(&[&m]);
    wait_status(&host, "forever", Duration::from_secs(10), |s| {
        listening_on(s, 7171)
    });
    host.signal("TERM");
    assert_eq!(host.wait(Duration::from_secs(10)).code(), Some(0));
    host.wait_for_log(
        &["service stopped", r#""workload":"forever""#],
        Duration::from_secs(1),
    );
}

#[test]
fn on_one_worker_the_service_shares_its_runtime_and_still_stops_cleanly() {
    let dir = TempDir::new("colocated");
    let m = dir.write("w.yaml", cache_workload("solo", "solo.localhost"));
    let mut host = Hearth::start_with(&[&m], &["--workers", "1"]);
    wait_status(&host, "solo", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    for i in 1..=20 {
        assert_eq!(
            host.get("solo.localhost", "/incr/n").body,
            format!("INT {i}\n")
        );
    }
    host.signal("TERM");
    assert_eq!(host.wait(Duration::from_secs(10)).code(), Some(0));
    host.wait_for_log(
        &["service stopped", r#""workload":"solo""#],
        Duration::from_secs(1),
    );
}

/// The scrape's `hearth_virtual_connections_across_threads_total` for `workload`.
fn across_threads(host: &Hearth, workload: &str) -> u64 {
    let scrape = host.admin_get("/metrics").body;
    let label = format!("workload=\"{workload}\"");
    scrape
        .lines()
        .find(|l| {
            l.starts_with("hearth_virtual_connections_across_threads_total{") && l.contains(&label)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no across-threads count for {workload} in:\n{scrape}"))
}

#[test]
fn on_two_workers_a_components_connections_to_its_service_stay_on_one_thread() {
    let dir = TempDir::new("homed");
    let m = dir.write("w.yaml", cache_workload("homed", "homed.localhost"));
    let host = Hearth::start_with(&[&m], &["--workers", "2"]);
    let s = wait_status(&host, "homed", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    assert!(s["worker"] == 0 || s["worker"] == 1, "on a worker: {s}");
    // A new connection per request: the kernel spreads them over both workers' listeners,
    // and each is served on the service's.
    for i in 1..=40 {
        let r = crate::support::request(host.http, "homed.localhost", "/incr/n");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, format!("INT {i}\n").as_str())
        );
    }
    // Four requests in one write: the first head is read to steer the connection, and the
    // rest of the bytes go along with it.
    let mut conn = TcpStream::connect(host.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let one = "GET /incr/n HTTP/1.1\r\nHost: homed.localhost\r\n\r\n";
    let last = "GET /incr/n HTTP/1.1\r\nHost: homed.localhost\r\nConnection: close\r\n\r\n";
    write!(conn, "{one}{one}{one}{last}").unwrap();
    let mut answers = String::new();
    conn.read_to_string(&mut answers).unwrap();
    for i in 41..=44 {
        assert!(answers.contains(&format!("INT {i}\n")), "{answers}");
    }
    assert_eq!(across_threads(&host, "homed"), 0);

    // With a thread of its own, the same requests cross threads each time.
    let apart = Hearth::start_with(&[&m], &["--workers", "2", "--service-threads"]);
    let s = wait_status(&apart, "homed", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    assert!(s["worker"].is_null(), "{s}");
    for i in 1..=10 {
        let r = crate::support::request(apart.http, "homed.localhost", "/incr/n");
        assert_eq!(r.body, format!("INT {i}\n"));
    }
    assert_eq!(across_threads(&apart, "homed"), 10);
}

#[test]
fn a_first_head_read_for_steering_is_still_under_the_header_timeout() {
    let dir = TempDir::new("homed-slow");
    let m = dir.write("w.yaml", cache_workload("slow", "slow.localhost"));
    let host = Hearth::start_with(&[&m], &["--workers", "2", "--header-timeout", "1"]);
    wait_status(&host, "slow", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    let mut conn = TcpStream::connect(host.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sent = Instant::now();
    conn.write_all(b"GET /incr/n HTTP/1.1\r\nHost: slow.local")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    // Whole heads are still served.
    let r = crate::support::request(host.http, "slow.localhost", "/incr/n");
    assert_eq!(r.body, "INT 1\n");
}

#[test]
fn the_loopback_rule_is_the_same_for_sockets_and_http() {
    // `app.localhost` is the workload's own loopback over `wasi:http` ...
    let dir = TempDir::new("loopback-rule");
    let web = dir.write(
        "web.yaml",
        manifest(
            "web",
            &format!(
                "    - name: client\n      image: {}\n      http: {{ host: web.localhost }}\n",
                wasm("http_client")
            ),
            &format!("    image: {}\n", wasm("http_service")),
        ),
    );
    // ... and over `wasi:sockets`.
    let kv = dir.write(
        "kv.yaml",
        manifest(
            "kv",
            &format!(
                "    - name: probe\n      image: {}\n      http: {{ host: probe.localhost }}\n",
                wasm("tcp_client")
            ),
            &format!(
                "    image: {}\n    env: {{ CACHE_PORT: \"6380\" }}\n",
                wasm("cache_service")
            ),
        ),
    );
    let host = Hearth::start(&[&web, &kv]);
    wait_status(&host, "web", Duration::from_secs(10), |s| {
        listening_on(s, 8081)
    });
    wait_status(&host, "kv", Duration::from_secs(10), |s| {
        listening_on(s, 6380)
    });
    for name in ["app.localhost", "LOCALHOST.", "127.0.0.1"] {
        let r = host.get(
            "web.localhost",
            &format!("/url?u=http%3A%2F%2F{name}%3A8081%2Fvia-{name}"),
        );
        assert_eq!(r.status, 200, "wasi:http to {name}: {}", r.body);
        assert!(
            r.body.starts_with(&format!("service saw GET /via-{name}")),
            "{}",
            r.body
        );
        let r = host.get("probe.localhost", &format!("/connect/{name}/6380"));
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "connected: PONG\n"),
            "wasi:sockets to {name}"
        );
    }
    // The rest of 127.0.0.0/8 is the host's own loopback, on both paths: denied.
    let r = host.get("web.localhost", "/url?u=http%3A%2F%2F127.0.0.2%3A8081%2F");
    assert_eq!(r.status, 502, "{}", r.body);
    let r = host.get("probe.localhost", "/connect/127.0.0.2/6380");
    assert_eq!(r.status, 502, "{}", r.body);
}

#[test]
fn every_wasi_http_request_to_the_service_is_answered() {
    // A guest's GET goes out before the guest has finished its empty body; sent with a
    // chunked body, the service (which refuses chunked requests) answered 501 and closed, and
    // the guest saw a reset while finishing the body: 3 to 5 requests in a hundred failed.
    let dir = TempDir::new("loopback-many");
    let host = web_host(&dir, "{ host: web.localhost }");
    let failed: Vec<String> = (0..300)
        .map(|i| {
            host.get(
                "web.localhost",
                &format!("/url?u=http%3A%2F%2Fapp.localhost%3A8081%2Fn{i}"),
            )
        })
        .filter(|r| r.status != 200)
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 300 failed: {failed:?}",
        failed.len()
    );
}
