//! `GET /metrics` on the admin listener, scraped by a real Prometheus server (Debian's
//! `prometheus`, started here on loopback): the request and trap counters it stores are the
//! ones the requests made. And `/metrics` is behind the admin token like the rest.

use crate::support::{Hearth, TempDir, free_port, request, wasm, workload};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server scraping `target` every second.
pub(crate) struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub(crate) fn start(target: SocketAddr) -> Self {
        let dir = TempDir::new("prometheus");
        let config = dir.write(
            "prometheus.yml",
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: hearth\n    static_configs: [{{ targets: [\"{target}\"] }}]\n"
            ),
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (scripts/setup installs it)");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The value of an instant query with one result, once it has one.
    pub(crate) fn value(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let resp = std::panic::catch_unwind(|| request(self.addr, "localhost", &path)).ok()?;
        let json: serde_json::Value = serde_json::from_str(&resp.body).ok()?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` answers `wanted`.
    pub(crate) fn wait_for(&self, query: &str, wanted: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.value(query);
            if last == Some(wanted) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus never answered {wanted} to {query}; last answer {last:?}");
    }
}

/// Query strings for the HTTP API: everything but unreserved characters escaped.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_request_and_trap_counts() {
    let dir = TempDir::new("metrics");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "shop",
            &format!(
                "    - name: hello\n      image: {}\n      http: {{ path: /hello }}\n    - name: f\n      image: {}\n      http: {{}}\n",
                wasm("hello"),
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    let prometheus = Prometheus::start(host.admin);
    for _ in 0..7 {
        assert_eq!(host.get("x", "/hello").status, 200);
    }
    assert_eq!(host.get("x", "/trap").status, 500);
    prometheus.wait_for(
        r#"hearth_component_invocations_total{workload="shop",component="hello",outcome="ok"}"#,
        7.0,
    );
    prometheus.wait_for(
        r#"hearth_component_invocations_total{workload="shop",component="f",outcome="trapped"}"#,
        1.0,
    );
    prometheus.wait_for(
        r#"hearth_component_duration_seconds_count{workload="shop",component="hello"}"#,
        7.0,
    );
    prometheus.wait_for("hearth_workloads", 1.0);
    // Two components' code loaded once each (from the disk cache or compiled).
    prometheus.wait_for("sum(hearth_compile_cache_loads_total)", 2.0);
    prometheus.wait_for("hearth_instance_pool_in_use", 0.0);
    // More requests move the counter on.
    for _ in 0..3 {
        host.get("x", "/hello");
    }
    prometheus.wait_for(
        r#"hearth_component_invocations_total{workload="shop",component="hello",outcome="ok"}"#,
        10.0,
    );
}

#[test]
fn metrics_and_logs_need_the_admin_token_when_one_is_set() {
    let host = Hearth::with_token("metrics-token", &[]);
    assert_eq!(host.admin_get("/metrics").status, 401);
    assert_eq!(host.admin_get("/v1/workloads/any/logs").status, 401);
    assert_eq!(
        host.admin_get("/v1/workloads/any/logs?follow=1").status,
        401
    );
    let resp = host.admin_send("GET", "/metrics", b"");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("hearth_workloads"), "{}", resp.text());
}

#[test]
fn each_instance_records_its_memory_when_it_ends() {
    let dir = TempDir::new("metrics-memory");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "mem",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n      limits: {{ memoryMiB: 32 }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    for _ in 0..2 {
        assert_eq!(host.get("x", "/ok").status, 200);
    }
    // Grows its memory until the 32 MiB limit refuses, then traps.
    assert_eq!(host.get("x", "/oom").status, 500);
    // An instance ends just after its response is written: wait for the third.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let scrape = loop {
        let scrape = host.admin_get("/metrics").body;
        let ended = r#"hearth_component_instance_memory_bytes_count{host="vm",workload="mem",component="f"} 3"#;
        if scrape.contains(ended) || std::time::Instant::now() > deadline {
            break scrape;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let series = |suffix: &str, le: Option<&str>| -> Option<f64> {
        scrape
            .lines()
            .filter(|l| l.starts_with(&format!("hearth_component_instance_memory_bytes{suffix}{{")))
            .filter(|l| l.contains(r#"component="f""#))
            .filter(|l| le.is_none_or(|le| l.contains(&format!(r#"le="{le}""#))))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(series("_count", None), Some(3.0), "{scrape}");
    // The two small instances hold a few MiB at most; the bomb ends near its limit.
    assert_eq!(series("_bucket", Some("4194304")), Some(2.0), "{scrape}");
    assert_eq!(series("_bucket", Some("16777216")), Some(2.0), "{scrape}");
    assert_eq!(series("_bucket", Some("67108864")), Some(3.0), "{scrape}");
    let sum = series("_sum", None).unwrap();
    assert!(sum > 16.0 * 1_048_576.0, "{sum}");
}

#[test]
fn no_metrics_records_nothing_and_says_so() {
    let dir = TempDir::new("no-metrics");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "hello",
            &format!(
                "    - name: hello\n      image: {}\n      http: {{}}\n",
                wasm("hello")
            ),
        ),
    );
    let host = Hearth::start_with(&[&manifest], &["--no-metrics"]);
    assert_eq!(host.get("x", "/").status, 200);
    let scrape = host.admin_get("/metrics");
    assert_eq!(scrape.status, 404);
    assert!(scrape.body.contains("metrics are off"), "{}", scrape.body);
    // The status counters do not depend on the recorder.
    let status: serde_json::Value =
        serde_json::from_str(&host.admin_get("/v1/workloads").body).unwrap();
    assert_eq!(
        status[0]["components"][0]["stats"]["requests"], 1,
        "{status}"
    );
}

/// The value of the first series of `name` whose labels include `label`, in a scrape.
fn sample(scrape: &str, name: &str, label: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_crashing_service_shows_its_restarts_and_state() {
    let dir = TempDir::new("metrics-service");
    let manifest = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: flaky\nspec:\n  service:\n    image: {}\n    env: {{ MODE: trap, AFTER_MS: \"100\" }}\n    ports: [{{ port: 7171 }}]\n    restart: {{}}\n",
            wasm("crashy_service")
        ),
    );
    let host = Hearth::start(&[&manifest]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = host.admin_get("/metrics").body;
        let restarts = sample(&scrape, "hearth_service_restarts", r#"workload="flaky""#);
        if restarts.is_some_and(|n| n >= 2.0) {
            // Exactly one state is current.
            let states: f64 = scrape
                .lines()
                .filter(|l| {
                    l.starts_with("hearth_service_state{") && l.contains(r#"workload="flaky""#)
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert_eq!(states, 1.0, "{scrape}");
            // It crashed last (it traps), and a crash is the only exit it has had.
            let exit = |reason: &str| {
                sample(
                    &scrape,
                    "hearth_service_last_exit",
                    &format!(r#"workload="flaky",reason="{reason}""#),
                )
            };
            assert_eq!(exit("crashed"), Some(1.0), "{scrape}");
            assert_eq!(exit("clean"), Some(0.0), "{scrape}");
            assert!(
                sample(
                    &scrape,
                    "hearth_service_uptime_seconds",
                    r#"workload="flaky""#
                )
                .is_some_and(|s| (0.0..5.0).contains(&s)),
                "{scrape}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "no restarts counted: {scrape}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn top_shows_each_components_rate_and_totals() {
    let dir = TempDir::new("top");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "shop",
            &format!(
                "    - name: hello\n      image: {}\n      http: {{}}\n",
                wasm("hello")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    let admin = host.admin.to_string();
    let top = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["top", "--frames", "2", "--interval", "1", "--admin", &admin])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..20 {
        assert_eq!(host.get("x", "/").status, 200);
    }
    let out = top.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rfind(|l| l.starts_with("shop"))
        .expect("a row for the component");
    let cells: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cells[..2], ["shop", "hello"], "{text}");
    assert!(
        cells[2].parse::<f64>().is_ok(),
        "a rate in the second frame: {text}"
    );
    assert_eq!(cells[5], "20", "{text}");
}
