//! What a guest can reach, and limits on what it can do, enforced and reported with the
//! workload and part named: resources held at once, a service's memory, and a service's share
//! of a one-worker host.

use crate::services::wait_status;
use crate::support::{Hearth, TempDir, wasm, workload};
use std::time::{Duration, Instant};

#[test]
fn a_guest_reaches_no_host_file_and_no_host_environment() {
    let dir = TempDir::new("reach");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "curious",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ path: / }}\n      env: {{ GIVEN: yes }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start_env(&[&manifest], &[], &[("HOST_SECRET", "s3cret")]);
    assert_eq!(host.get("x", "/files").body, "reached: []\n");
    assert_eq!(host.get("x", "/env/HOST_SECRET").status, 404);
    assert_eq!(host.get("x", "/env/PATH").status, 404);
    assert_eq!(host.get("x", "/env/GIVEN").body, "yes\n");
}

#[test]
fn a_component_holding_a_million_pollables_is_stopped_and_the_host_carries_on() {
    let dir = TempDir::new("pollables");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "greedy",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ path: / }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    let began = Instant::now();
    let r = host.get("x", "/pollables");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        !r.body.contains("resources"),
        "no guest details: {}",
        r.body
    );
    eprintln!("stopped at the resource limit in {:?}", began.elapsed());
    let line = host.wait_for_log(
        &[
            "guest failed",
            r#""workload":"greedy""#,
            r#""component":"web""#,
            "exceeded its limit of 10000 resources held at once",
        ],
        Duration::from_secs(5),
    );
    assert!(line.contains("maxResources"), "{line}");
    for _ in 0..5 {
        assert_eq!(host.get("x", "/ok").status, 200);
    }
}

#[test]
fn a_component_over_its_memory_limit_is_named_so_in_the_log() {
    let dir = TempDir::new("memory-log");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "bomb",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ path: / }}\n      limits: {{ memoryMiB: 16 }}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    assert_eq!(host.get("x", "/oom").status, 500);
    host.wait_for_log(
        &[
            "guest failed",
            r#""workload":"bomb""#,
            "exceeded memory limit of 16 MiB",
        ],
        Duration::from_secs(5),
    );
}

fn service_workload(dir: &TempDir, name: &str, env: &str, limits: &str) -> std::path::PathBuf {
    dir.write(
        &format!("{name}.yaml"),
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: web\n      image: {}\n      http: {{ path: / }}\n  service:\n    image: {}\n    env: {env}\n    limits: {limits}\n",
            wasm("hello"),
            wasm("crashy_service")
        ),
    )
}

#[test]
fn a_service_over_its_memory_limit_is_restarted_with_the_limit_as_its_last_exit() {
    let dir = TempDir::new("service-memory");
    let m = service_workload(
        &dir,
        "hungry",
        "{ MODE: oom, AFTER_MS: \"20\" }",
        "{ memoryMiB: 16 }",
    );
    let host = Hearth::start(&[&m]);
    let s = wait_status(&host, "hungry", Duration::from_secs(20), |s| {
        s["restarts"].as_u64() >= Some(1) && !s["lastExit"].is_null()
    });
    assert_eq!(
        s["lastExit"], "exceeded memory limit of 16 MiB (limits.memoryMiB)",
        "{s}"
    );
    host.wait_for_log(
        &[
            "service exited; restarting after backoff",
            r#""workload":"hungry""#,
            "exceeded memory limit of 16 MiB",
        ],
        Duration::from_secs(5),
    );
    // Its workload's component is untouched by it.
    assert_eq!(host.get("x", "/").status, 200);
}

#[test]
fn a_spinning_service_on_a_one_worker_host_leaves_http_fast() {
    http_beside_a_spinning_service("1");
}

#[test]
fn a_spinning_service_on_two_workers_leaves_its_workloads_http_fast() {
    // The service runs on one worker, and its workload's connections are steered there.
    http_beside_a_spinning_service("2");
}

fn http_beside_a_spinning_service(workers: &str) {
    let dir = TempDir::new("spin");
    let m = service_workload(&dir, "spinner", "{ MODE: spin, AFTER_MS: \"0\" }", "{}");
    let host = Hearth::start_with(&[&m], &["--workers", workers]);
    host.wait_for_log(&["crashy ending: spin"], Duration::from_secs(10));
    // The service now computes without pause on a worker that serves HTTP too.
    let mut took: Vec<Duration> = (0..300)
        .map(|_| {
            let sent = Instant::now();
            assert_eq!(host.get("x", "/").status, 200);
            sent.elapsed()
        })
        .collect();
    took.sort();
    let (p50, p99) = (took[150], took[296]);
    eprintln!("HTTP beside a spinning service, {workers} worker(s): p50 {p50:?}, p99 {p99:?}");
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    let s = wait_status(&host, "spinner", Duration::from_secs(1), |_| true);
    assert_eq!(s["state"], "running", "it spins on: {s}");
}
