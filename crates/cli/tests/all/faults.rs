//! Guest faults become status codes and never take the host down: each is followed by a
//! normal request on the same host.

use crate::support::{Hearth, TempDir, wasm, workload};
use std::time::{Duration, Instant};

fn faults_host(limits: &str) -> (TempDir, Hearth) {
    let dir = TempDir::new("faults");
    let m = dir.write(
        "w.yaml",
        workload(
            "faulty",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n      limits: {limits}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&m]);
    (dir, host)
}

fn assert_ok_after(host: &Hearth) {
    let resp = host.get("x", "/ok");
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok\n"));
}

#[test]
fn trap_gives_500_without_internals_then_200() {
    let (_d, host) = faults_host("{}");
    let resp = host.get("x", "/trap");
    assert_eq!(resp.status, 500);
    assert!(
        !resp.body.contains("secret-internal-detail"),
        "guest internals leaked: {}",
        resp.body
    );
    assert!(resp.body.contains("details are in the host log"));
    host.wait_for_log(
        &["guest failed", r#""component":"f""#],
        Duration::from_secs(5),
    );
    assert_ok_after(&host);
}

#[test]
fn endless_loop_gives_504_at_the_deadline_then_200() {
    let (_d, host) = faults_host("{ timeoutMs: 300 }");
    let started = Instant::now();
    let resp = host.get("x", "/loop");
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.body);
    assert!(
        took >= Duration::from_millis(300),
        "answered before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(300 + 700),
        "deadline overshot: {took:?}"
    );
    assert_ok_after(&host);
}

/// The instance made ahead after a request (`invoke/warm.rs`) is interrupted at the deadline
/// of the request it serves, not at one from when it was made.
#[test]
fn an_instance_made_ahead_keeps_its_requests_deadline() {
    let (_d, host) = faults_host("{ timeoutMs: 300 }");
    assert_ok_after(&host);
    // Longer than the timeout: a deadline from the making would be long past.
    std::thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    let resp = host.get("x", "/loop");
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.body);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(300 + 700),
        "interrupted at {took:?}, not at its own deadline"
    );
    assert_ok_after(&host);
}

#[test]
fn guest_blocked_in_a_host_call_also_times_out() {
    let (_d, host) = faults_host("{ timeoutMs: 300 }");
    let started = Instant::now();
    assert_eq!(host.get("x", "/sleep/5000").status, 504);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_ok_after(&host);
}

#[test]
fn memory_bomb_gives_500_then_200() {
    let (_d, host) = faults_host("{ memoryMiB: 16 }");
    assert_eq!(host.get("x", "/oom").status, 500);
    assert_ok_after(&host);
    assert_eq!(host.get("x", "/oom").status, 500);
    assert_ok_after(&host);
}

#[test]
fn stack_overflow_gives_500_then_200() {
    let (_d, host) = faults_host("{}");
    assert_eq!(host.get("x", "/stack").status, 500);
    host.wait_for_log(
        &[
            "guest failed",
            r#""reason":"wasm trap: call stack exhausted""#,
        ],
        Duration::from_secs(5),
    );
    assert_ok_after(&host);
    // Rust keeps large locals on a stack in linear memory; running off its end is a fault too.
    assert_eq!(host.get("x", "/shadow-stack").status, 500);
    assert_ok_after(&host);
}

#[test]
fn repeated_faults_leak_nothing() {
    let (_d, host) = faults_host("{ memoryMiB: 16, timeoutMs: 200 }");
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", host.pid()))
            .unwrap()
            .count()
    };
    // Warm up so lazily created descriptors (epoll, eventfds, cache maps) exist before counting.
    for path in ["/ok", "/trap", "/oom", "/stack"] {
        host.get("x", path);
    }
    let before = fds();
    for _ in 0..10 {
        for path in ["/trap", "/oom", "/stack", "/shadow-stack", "/loop"] {
            assert!(host.get("x", path).status >= 500);
        }
    }
    assert_ok_after(&host);
    std::thread::sleep(Duration::from_millis(200));
    let after = fds();
    assert!(
        after <= before + 2,
        "file descriptors grew from {before} to {after}"
    );
    let status = host.workloads();
    let stats = &status[0]["components"][0]["stats"];
    assert_eq!(stats["inFlight"], 0, "{stats}");
    assert_eq!(stats["timedOut"], 10, "{stats}");
    assert!(stats["failed"].as_u64().unwrap() >= 40, "{stats}");
}

#[test]
fn overload_gives_503_with_retry_after() {
    let (_d, host) = faults_host("{ maxConcurrency: 1 }");
    let addr = host.http;
    let clients: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || crate::support::request(addr, "x", "/sleep/1500")))
        .collect();
    let responses: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "{responses:?}");
    assert!(
        busy.len() >= 3,
        "one runs and one may queue; the rest must be refused: {responses:?}"
    );
    for r in busy {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_ok_after(&host);
}
