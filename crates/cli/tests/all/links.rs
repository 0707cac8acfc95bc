//! A service calling a component's export over WIT (the seed's cron pair): every call runs on a
//! fresh instance of the component, a failing callee gives the caller an error value rather
//! than crashing it, and an import nothing provides is refused with the candidates listed.

use crate::support::{Hearth, TempDir, hearth_cmd, wasm};
use std::time::Duration;

fn cron(dir: &TempDir, component_env: &str) -> std::path::PathBuf {
    dir.write(
        "cron.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: cron\nspec:\n  components:\n    - name: job\n      image: {}\n      env: {component_env}\n  service:\n    image: {}\n",
            wasm("cron_component"),
            wasm("cron_service")
        ),
    )
}

#[test]
fn the_seed_cron_service_ticks_a_fresh_component_every_second() {
    let dir = TempDir::new("cron");
    let m = cron(&dir, "{}");
    let host = Hearth::start(&[&m]);
    host.wait_for_log(
        &["import linked to component", "wasmcloud:example/cron@0.0.1"],
        Duration::from_secs(1),
    );
    // Three ticks, a second apart: the first three span about two seconds (well within 4 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ticks = loop {
        let ticks: Vec<String> = host
            .logs()
            .into_iter()
            .filter(|l| l.contains("cron tick"))
            .collect();
        if ticks.len() >= 3 {
            break ticks;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than 3 ticks:\n{}",
            host.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let at = |line: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["timestamp"].as_str().unwrap(); // 2026-11-21T13:38:52.144693Z
        let clock = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
        clock
            .split(':')
            .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap())
    };
    let span = at(&ticks[2]) - at(&ticks[0]);
    assert!(
        (1.5..3.0).contains(&span),
        "three ticks should span about 2 s, spanned {span:.2} s"
    );
    let status = host.workloads();
    assert!(
        status[0]["components"][0]["stats"]["requests"]
            .as_u64()
            .unwrap()
            >= 3,
        "{status}"
    );
}

#[test]
fn a_trapping_callee_gives_the_service_an_error_not_a_crash() {
    let dir = TempDir::new("crontrap");
    let m = cron(&dir, "{ TRAP: \"1\" }");
    let host = Hearth::start(&[&m]);
    std::thread::sleep(Duration::from_millis(3500));
    let failures = host
        .logs()
        .iter()
        .filter(|l| l.contains("guest failed"))
        .count();
    assert!(
        failures >= 2,
        "the service should keep calling after a failed call: {failures}"
    );
    let status = host.workloads();
    let service = &status[0]["service"];
    assert_eq!(service["state"], "running", "{service}");
    assert_eq!(
        service["restarts"], 0,
        "the caller got Err(...) and carried on: {service}"
    );
    assert!(
        status[0]["components"][0]["stats"]["failed"]
            .as_u64()
            .unwrap()
            >= 2,
        "{status}"
    );
}

#[test]
fn an_import_nothing_provides_is_refused_with_the_candidates() {
    let dir = TempDir::new("cronmissing");
    let m = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: cron\nspec:\n  components:\n    - name: web\n      image: {}\n      http: {{}}\n  service:\n    image: {}\n",
            wasm("hello"),
            wasm("cron_service")
        ),
    );
    let (code, _, err) = hearth_cmd(&["run", "--http", "127.0.0.1:0", m.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("spec.service.image: the service imports wasmcloud:example/cron@0.0.1, which no host interface provides"), "{err}");
    assert!(
        err.contains("`web` exports wasi:http/incoming-handler@0.2"),
        "{err}"
    );
}

fn types_pair(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "types.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: types\nspec:\n  components:\n    - name: caller\n      image: {}\n      http: {{}}\n    - name: callee\n      image: {}\n",
            wasm("types_caller"),
            wasm("types_callee")
        ),
    )
}

#[test]
fn every_wit_value_type_round_trips_between_components() {
    let dir = TempDir::new("types");
    let m = types_pair(&dir);
    let host = Hearth::start(&[&m]);
    let r = host.get("x", "/roundtrip");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "all 26 round-trips ok\n"),
        "{}",
        r.body
    );
}

#[test]
fn an_http_component_calls_another_component() {
    let dir = TempDir::new("greet");
    let m = types_pair(&dir);
    let host = Hearth::start(&[&m]);
    let r = host.get("x", "/greet/hearth");
    assert_eq!((r.status, r.body.as_str()), (200, "hello, hearth\n"));
    let r = host.get("x", "/greet/");
    assert_eq!(
        (r.status, r.body.as_str()),
        (502, "greet failed: empty name\n")
    );
    // A trapping callee gives the caller `Err(reason)` (greet returns result<_, string>),
    // and the next call works.
    let r = host.get("x", "/greet/trap");
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.body.contains("greet failed: the component trapped"),
        "{}",
        r.body
    );
    assert_eq!(host.get("x", "/greet/again").body, "hello, again\n");
    let status = host.workloads();
    assert_eq!(
        status[0]["components"][1]["stats"]["requests"], 4,
        "calls are counted: {status}"
    );
}
