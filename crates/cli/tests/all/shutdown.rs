//! SIGTERM stops accepting, drains in-flight requests, and exits 0.

use crate::support::{Hearth, TempDir, wasm, workload};
use std::time::{Duration, Instant};

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let dir = TempDir::new("drain");
    let m = dir.write(
        "w.yaml",
        workload(
            "drain",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n",
                wasm("faults")
            ),
        ),
    );
    let mut host = Hearth::start(&[&m]);
    let addr = host.http;
    let in_flight = std::thread::spawn(move || crate::support::request(addr, "x", "/sleep/1000"));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    host.signal("TERM");
    let resp = in_flight.join().unwrap();
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, "slept 1000\n"),
        "the in-flight request must complete"
    );
    let status = host.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "must not accept after shutdown"
    );
    host.wait_for_log(&["ingress drained"], Duration::from_secs(1));
}
