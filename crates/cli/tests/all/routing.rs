//! Routing by host and longest path prefix across workloads; 404; fresh instances; admin API.

use crate::support::{Hearth, TempDir, wasm, workload};

#[test]
fn routes_by_host_and_path_across_two_workloads() {
    let dir = TempDir::new("routing");
    let one = dir.write(
        "one.yaml",
        workload(
            "one",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ host: a.localhost, path: / }}\n      env: {{ GREETING: from-one }}\n",
                wasm("hello")
            ),
        ),
    );
    let two = dir.write(
        "two.yaml",
        workload(
            "two",
            &format!(
                "    - name: api\n      image: {h}\n      http: {{ path: /two }}\n      env: {{ GREETING: from-two }}\n    - name: deep\n      image: {h}\n      http: {{ path: /two/deeper/ }}\n      env: {{ GREETING: from-two-deeper }}\n",
                h = wasm("hello")
            ),
        ),
    );
    let host = Hearth::start(&[&one, &two]);

    let cases = [
        ("a.localhost", "/", 200, "from-one\n"),
        ("A.LOCALHOST:9999", "/anything/at/all", 200, "from-one\n"),
        ("a.localhost", "/two", 200, "from-one\n"), // a host's own routes come first
        ("b.localhost", "/two", 200, "from-two\n"),
        ("b.localhost", "/two/x", 200, "from-two\n"),
        ("b.localhost", "/two/deeper", 200, "from-two-deeper\n"),
        (
            "b.localhost",
            "/two/deeper/still?q=1",
            200,
            "from-two-deeper\n",
        ),
    ];
    for (h, path, status, body) in cases {
        let resp = host.get(h, path);
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (status, body),
            "{h}{path}"
        );
    }
    for (h, path) in [
        ("b.localhost", "/"),
        ("b.localhost", "/twox"),
        ("c.localhost", "/nope"),
    ] {
        let resp = host.get(h, path);
        assert_eq!(resp.status, 404, "{h}{path}");
        assert!(
            resp.body.contains("no workload serves this host and path"),
            "{}",
            resp.body
        );
    }

    let health = host.admin_get("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let status = host.workloads();
    let names: Vec<_> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(status[0]["components"][0]["stats"]["requests"], 3);
    assert_eq!(status[0]["components"][0]["route"]["host"], "a.localhost");
    assert_eq!(status[1]["components"][1]["name"], "deep");
    assert_eq!(status[1]["components"][1]["stats"]["requests"], 2);
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let dir = TempDir::new("fresh");
    let m = dir.write(
        "w.yaml",
        workload(
            "fresh",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&m]);
    for _ in 0..20 {
        let resp = host.get("x", "/count");
        assert_eq!((resp.status, resp.body.as_str()), (200, "1\n"));
    }
}

#[test]
fn env_reaches_the_guest_and_guest_output_reaches_the_log() {
    let dir = TempDir::new("env");
    let m = dir.write(
        "w.yaml",
        workload(
            "envy",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n      env: {{ COLOUR: teal }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&m]);
    assert_eq!(host.get("x", "/env/COLOUR").body, "teal\n");
    assert_eq!(
        host.get("x", "/env/HOME").status,
        404,
        "host environment must not leak in"
    );
    assert_eq!(host.get("x", "/log").status, 200);
    let line = host.wait_for_log(
        &["guest says hello on stdout"],
        std::time::Duration::from_secs(5),
    );
    assert!(
        line.contains(r#""workload":"envy""#) && line.contains(r#""component":"f""#),
        "{line}"
    );
    host.wait_for_log(
        &["guest says hello on stderr", r#""stream":"stderr""#],
        std::time::Duration::from_secs(5),
    );
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    use std::io::{Read, Write};
    let dir = TempDir::new("keepalive");
    let m = dir.write(
        "w.yaml",
        workload(
            "ka",
            &format!(
                "    - name: h\n      image: {}\n      http: {{}}\n",
                wasm("hello")
            ),
        ),
    );
    let host = Hearth::start(&[&m]);
    let mut s = std::net::TcpStream::connect(host.http).unwrap();
    for _ in 0..5 {
        write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        // The guest streams its body, so it arrives chunked: wait for the last chunk.
        while !got.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains("hello from hearth\n"),
            "{text}"
        );
    }
}
