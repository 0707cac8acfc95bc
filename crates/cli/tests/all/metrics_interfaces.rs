//! Host-interface backends' operations in `GET /metrics`, scraped by a real Prometheus: a
//! key-value workload's calls are counted by outcome, with their latency; a key the host
//! refuses before the backend is not an operation. And each workload's open virtual
//! connections are a gauge.

use crate::metrics::Prometheus;
use crate::support::{Hearth, TempDir, wasm};

const OPS: &str = "hearth_interface_operations_total";

fn ops(outcome: &str) -> String {
    format!(r#"{OPS}{{workload="kvm",interface="keyvalue",backend="memory",outcome="{outcome}"}}"#)
}

#[test]
fn prometheus_scrapes_keyvalue_operations_by_outcome() {
    let dir = TempDir::new("metrics-kv");
    let manifest = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: kvm\nspec:\n  hostInterfaces:\n    - {{interface: wasi:keyvalue, backend: memory}}\n  components:\n    - name: kv\n      image: {}\n      http: {{path: /}}\n",
            wasm("kv_http")
        ),
    );
    let host = Hearth::start(&[&manifest]);
    let prometheus = Prometheus::start(host.admin);
    // Five increments: one `increment` each.
    for n in 1..=5 {
        let r = host.send("GET", "x", "/incr/c/n", b"");
        assert_eq!((r.status, r.text()), (200, format!("{n}\n")));
    }
    // A `set`, then an increment the backend refuses (not a number): one error.
    assert_eq!(host.send("PUT", "x", "/set/c/s", b"abc").status, 200);
    let refused = host.send("GET", "x", "/incr/c/s", b"");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("not a decimal number"),
        "{}",
        refused.text()
    );
    // An empty key never reaches the backend: not counted.
    let empty = host.send("GET", "x", "/get/c/", b"");
    assert_eq!(empty.status, 503, "{}", empty.text());
    assert!(empty.text().contains("empty key"), "{}", empty.text());

    prometheus.wait_for(&ops("ok"), 6.0);
    prometheus.wait_for(&ops("error"), 1.0);
    prometheus.wait_for(
        r#"hearth_interface_duration_seconds_count{workload="kvm",interface="keyvalue",backend="memory"}"#,
        7.0,
    );
    // Only what the workload used: the blobstore and messaging backends bound beside the
    // key-value one made no operations, and a meter is registered at its first operation, so
    // they have no series at all (a host of many idle workloads exports none for them).
    // All the workload's operation series: key-value `ok` and `error`, nothing else.
    assert_eq!(
        prometheus.value(r#"count(hearth_interface_operations_total{workload="kvm"})"#),
        Some(2.0)
    );
    // No service, no published port: no virtual connection is open.
    prometheus.wait_for(r#"hearth_virtual_connections{workload="kvm"}"#, 0.0);
}
