//! `hearth operator` end to end: the real `kubectl` against the stand-in API server
//! (`hearth-kube-standin`; no Kubernetes API server can run on this machine, so this is the
//! one stand-in of these tests), a real `nats-server`, real `hearth host` processes and real
//! `hearth operator` processes. What runs on the hosts is real: requests are answered by the
//! replicas the operator placed.

use crate::harness::{
    Cluster, Host, Load, Nats, NatsExtra, Proc, failures, hello_deployment, serial, start_host,
    try_get,
};
use crate::metrics::sample;
use crate::support::{TempDir, free_port, wasm};
use hearth_kube_standin::ApiServer;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The stand-in API server with the CRDs registered through `kubectl apply`, as a user
/// would (`kubectl apply -k deploy/` does the same with the rest of the manifests).
struct Kube {
    api: ApiServer,
    dir: TempDir,
    config: PathBuf,
}

impl Kube {
    fn start() -> Self {
        let api = ApiServer::start(&[]);
        let dir = TempDir::new("kube");
        let config = api.kubeconfig(&dir.0);
        let kube = Self { api, dir, config };
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds.yaml");
        kube.ok(&["apply", "-f", crds.to_str().unwrap()]);
        kube
    }

    /// `kubectl ARGS` → (code, stdout, stderr).
    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.config)
            .arg("--cache-dir")
            .arg(self.dir.0.join("cache"))
            .output()
            .expect("kubectl (on this machine)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubectl ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args);
        assert_eq!(code, 0, "kubectl {args:?}: {out}{err}");
        out
    }

    /// `kubectl apply -f` of a manifest text.
    fn apply(&self, name: &str, yaml: &str) -> String {
        let file = self.dir.write(&format!("{name}.yaml"), yaml);
        self.ok(&["apply", "-f", file.to_str().unwrap()])
    }

    fn wd(&self, name: &str) -> Option<Value> {
        self.api.get("workloaddeployments", "default", name)
    }

    /// The deployment's `Workload` objects.
    fn replicas(&self, deployment: &str) -> Vec<Value> {
        self.api
            .list("workloads")
            .into_iter()
            .filter(|w| w["metadata"]["labels"]["hearth.dev/deployment"] == deployment)
            .collect()
    }
}

/// Starts `hearth operator` as one of the cluster's controllers (so a failing wait prints
/// its log); its index there.
fn start_operator(cluster: &mut Cluster, kube: &Kube, id: &str) -> usize {
    let url = cluster.url();
    start_operator_on(cluster, kube, id, &url)
}

/// [`start_operator`] connected to the NATS servers of `url` only.
fn start_operator_on(cluster: &mut Cluster, kube: &Kube, id: &str, url: &str) -> usize {
    start_operator_with(cluster, kube, id, url, &[])
}

/// [`start_operator_on`] with more flags.
fn start_operator_with(
    cluster: &mut Cluster,
    kube: &Kube,
    id: &str,
    url: &str,
    extra: &[&str],
) -> usize {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["operator", "--nats", url, "--id", id])
        .args(extra)
        .args(["--lease-namespace", "default", "--lease-seconds", "3"])
        .env("KUBECONFIG", &kube.config)
        .env("RUST_LOG", "info");
    cluster.controllers.push(Proc::spawn(id, command));
    cluster.controllers.len() - 1
}

/// NATS, three hosts, no NATS controller: the operator places everything.
fn hosts(n: usize) -> Cluster {
    let nats = Nats::start(1);
    let url = nats.url();
    let hosts: Vec<Host> = (1..=n)
        .map(|i| start_host(&url, &format!("h{i}"), &[]))
        .collect();
    Cluster::assemble(nats, hosts, Vec::new())
}

/// A condition of an object's status.
fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits for `n` replicas ready and up to date, with the status describing the current
/// generation.
fn wait_rolled_out(cluster: &Cluster, kube: &Kube, name: &str, n: u64) -> Value {
    cluster.eventually(
        Duration::from_secs(60),
        &format!("{name}: {n} replicas ready at the current generation"),
        || {
            let wd = kube.wd(name)?;
            let s = &wd["status"];
            (s["observedGeneration"] == wd["metadata"]["generation"]
                && s["readyReplicas"] == n
                && s["updatedReplicas"] == n
                && s["availableReplicas"] == n
                && s["replicas"] == n)
                .then_some(wd)
        },
    )
}

fn greeting(cluster: &Cluster) -> Option<String> {
    cluster
        .hosts
        .iter()
        .find_map(|h| try_get(h.http, "/").ok())
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

#[test]
fn kubectl_apply_runs_replicas_that_scale_roll_heal_and_go() {
    let _serial = serial();
    let mut cluster = hosts(3);
    let kube = Kube::start();
    let url = cluster.url();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let flags = ["--metrics", &metrics.to_string()].map(str::to_string);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator = start_operator_with(&mut cluster, &kube, "op-1", &url, &flags);

    // Apply: replicas run and answer.
    let out = kube.apply("web", &hello_deployment("web", 2, "v1", ""));
    assert_eq!(out.trim(), "workloaddeployment.hearth.dev/web created");
    let wd = wait_rolled_out(&cluster, &kube, "web", 2);
    assert_eq!(wd["status"]["selector"], "hearth.dev/deployment=web");
    assert_eq!(condition(&wd, "Available").unwrap()["status"], "True");
    let body = cluster.eventually(Duration::from_secs(10), "web answers", || {
        greeting(&cluster)
    });
    assert!(body.contains("v1"), "{body}");
    let replicas = kube.replicas("web");
    assert_eq!(replicas.len(), 2);
    for r in &replicas {
        assert_eq!(
            r["metadata"]["ownerReferences"][0]["uid"],
            wd["metadata"]["uid"]
        );
        assert_eq!(r["metadata"]["finalizers"][0], "hearth.dev/stop-replica");
    }
    let table = kube.ok(&["get", "wd"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["web", "2", "2", "2", "2"], "{table}");

    // Scale.
    let out = kube.ok(&["scale", "wd/web", "--replicas=3"]);
    assert_eq!(out.trim(), "workloaddeployment.hearth.dev/web scaled");
    wait_rolled_out(&cluster, &kube, "web", 3);
    cluster.eventually(
        Duration::from_secs(10),
        "three Workload objects, each placed",
        || {
            let replicas = kube.replicas("web");
            (replicas.len() == 3
                && replicas
                    .iter()
                    .all(|r| r["status"]["state"] == "ready" && r["status"]["host"].is_string()))
            .then_some(())
        },
    );
    let table = kube.ok(&["get", "workloads"]);
    assert!(table.contains("HOST") && table.contains("ready"), "{table}");

    // `--metrics`: the operator's view, in the series `hearth controller` reports.
    let deployment = r#"deployment="default/web""#;
    let scrape = cluster.eventually(Duration::from_secs(10), "3 of 3 in /metrics", || {
        let (_, body) = try_get(metrics, "/metrics").ok()?;
        (sample(&body, "hearth_cluster_replicas_desired", &[deployment]) == Some(3.0)
            && sample(&body, "hearth_cluster_replicas_ready", &[deployment]) == Some(3.0))
        .then_some(body)
    });
    assert_eq!(
        sample(&scrape, "hearth_cluster_leader", &[r#"operator="op-1""#]),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "hearth_cluster_hosts", &[r#"state="ready""#]),
        Some(3.0)
    );
    let starts = sample(&scrape, "hearth_cluster_replica_starts_total", &[]);
    assert!(starts.is_some_and(|n| n >= 3.0), "{starts:?}\n{scrape}");

    // Rolling update under a request loop: not one failure.
    let targets: Vec<_> = cluster.hosts.iter().map(|h| h.http).collect();
    let load = Load::start(&targets, 4, 5_000);
    let generation = kube.wd("web").unwrap()["metadata"]["generation"]
        .as_i64()
        .unwrap();
    let out = kube.apply("web", &hello_deployment("web", 3, "v2", ""));
    assert_eq!(out.trim(), "workloaddeployment.hearth.dev/web configured");
    let wd = wait_rolled_out(&cluster, &kube, "web", 3);
    assert_eq!(wd["metadata"]["generation"], generation + 1);
    cluster.eventually(Duration::from_secs(10), "v2 answers", || {
        greeting(&cluster).filter(|b| b.contains("v2"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let results = load.finish();
    assert!(results.len() > 50, "only {} requests", results.len());
    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    let reasons: Vec<String> = kube
        .api
        .events_for("web")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for wanted in ["Scheduled", "RollingOut", "Replaced", "RolloutComplete"] {
        assert!(
            reasons.iter().any(|r| r == wanted),
            "no {wanted} Event in {reasons:?}"
        );
    }

    // Kill a host: its replicas move, its Host turns Ready=False.
    let victim = kube.replicas("web")[0]["status"]["host"]
        .as_str()
        .unwrap()
        .to_string();
    let host = cluster.hosts.iter_mut().find(|h| h.id == victim).unwrap();
    host.proc.kill();
    cluster.eventually(
        Duration::from_secs(30),
        "the lost host's Host object says so",
        || {
            let h = kube.api.get("hosts", "", &victim)?;
            let ready = condition(&h, "Ready")?;
            (ready["status"] == "False").then(|| ready["reason"].clone())
        },
    );
    cluster.eventually(
        Duration::from_secs(60),
        "three ready replicas, none on the lost host",
        || {
            let wd = kube.wd("web")?;
            let replicas = kube.replicas("web");
            (wd["status"]["readyReplicas"] == 3
                && replicas.len() == 3
                && replicas.iter().all(|r| {
                    r["status"]["host"] != victim.as_str() && r["status"]["state"] == "ready"
                }))
            .then_some(())
        },
    );
    let host_row = kube.ok(&["get", "hosts"]);
    assert!(host_row.contains("False"), "{host_row}");

    // Delete: replicas stop on their hosts, finalizers clear, objects go.
    let started = Instant::now();
    kube.ok(&["delete", "wd", "web", "--timeout=60s"]);
    cluster.eventually(
        Duration::from_secs(60),
        "every Workload object gone",
        || (kube.replicas("web").is_empty() && kube.wd("web").is_none()).then_some(()),
    );
    cluster.eventually(
        Duration::from_secs(30),
        "no host runs a replica of web",
        || (cluster.reported("default/web", None).map(|(_, n)| n) == Some(0)).then_some(()),
    );
    eprintln!("deleted in {:?}", started.elapsed());
    let operator = &cluster.controllers[operator];
    assert!(!operator.has_log("panicked"), "{}", operator.logs());
}

#[test]
fn of_two_operators_the_lease_holder_acts_and_the_other_takes_over() {
    let _serial = serial();
    let mut cluster = hosts(2);
    let kube = Kube::start();
    let first = start_operator(&mut cluster, &kube, "op-a");
    cluster.controllers[first].wait_log("took the Lease", Duration::from_secs(30));
    let second = start_operator(&mut cluster, &kube, "op-b");
    kube.apply("pair", &hello_deployment("pair", 2, "one", ""));
    wait_rolled_out(&cluster, &kube, "pair", 2);
    let lease = kube
        .api
        .get("leases", "default", "hearth-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "op-a");
    let (a, b) = (&cluster.controllers[first], &cluster.controllers[second]);
    assert!(a.has_log("placing replica"));
    assert!(!b.has_log("placing replica"), "{}", b.logs());
    assert!(!b.has_log("took the Lease"));

    cluster.controllers[first].kill();
    cluster.controllers[second].wait_log("took the Lease", Duration::from_secs(30));
    let lease = kube
        .api
        .get("leases", "default", "hearth-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "op-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    kube.ok(&["scale", "wd/pair", "--replicas=3"]);
    wait_rolled_out(&cluster, &kube, "pair", 3);
    let b = &cluster.controllers[second];
    assert!(b.has_log("placing replica"), "{}", b.logs());
}

#[test]
fn a_standalone_workload_runs_and_a_bad_manifest_says_where_it_is_wrong() {
    let _serial = serial();
    let mut cluster = hosts(1);
    let kube = Kube::start();
    start_operator(&mut cluster, &kube, "op-1");

    // `kind: Workload` on its own: one replica.
    let single = format!(
        "apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: solo
spec:
  components:
    - name: hello
      image: {}
      http: {{ path: / }}
      env: {{ GREETING: \"alone\" }}
",
        wasm("hello")
    );
    kube.apply("solo", &single);
    let status = cluster.eventually(Duration::from_secs(60), "the Workload is ready", || {
        let w = kube.api.get("workloads", "default", "solo")?;
        (w["status"]["state"] == "ready").then(|| w["status"].clone())
    });
    assert_eq!(status["host"], "h1");
    assert_eq!(
        condition(&serde_json::json!({"status": status}), "Ready").unwrap()["status"],
        "True"
    );
    let body = cluster.eventually(Duration::from_secs(10), "solo answers", || {
        greeting(&cluster)
    });
    assert!(body.contains("alone"), "{body}");
    kube.ok(&["delete", "workload", "solo", "--timeout=60s"]);
    assert!(kube.api.get("workloads", "default", "solo").is_none());
    cluster.eventually(Duration::from_secs(20), "the host stopped it", || {
        (cluster
            .reported("default/Workload/solo", None)
            .map(|(_, n)| n)
            == Some(0))
        .then_some(())
    });

    // What the schema cannot check: the condition carries `hearth validate`'s message.
    let bad = hello_deployment("bad", 1, "x", "").replace("path: /", "path: no-slash");
    kube.apply("bad", &bad);
    let progressing =
        cluster.eventually(Duration::from_secs(30), "an InvalidSpec condition", || {
            let wd = kube.wd("bad")?;
            condition(&wd, "Progressing")
                .filter(|c| c["reason"] == "InvalidSpec")
                .cloned()
        });
    assert_eq!(progressing["status"], "False");
    let message = progressing["message"].as_str().unwrap();
    assert!(
        message.starts_with("default/bad: spec.template.spec.components[0].http.path"),
        "{message}"
    );
    assert!(kube.replicas("bad").is_empty());
    let described = kube.ok(&[
        "get",
        "wd",
        "bad",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].message}",
    ]);
    assert_eq!(described, message);
}

/// The names of a deployment's `Workload` objects, and whether any is being deleted.
fn replica_names(kube: &Kube, deployment: &str) -> (Vec<String>, bool) {
    let replicas = kube.replicas(deployment);
    let mut names: Vec<String> = replicas
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let deleting = replicas
        .iter()
        .any(|r| r["metadata"]["deletionTimestamp"].is_string());
    (names, deleting)
}

#[test]
fn an_operator_cut_off_from_nats_deletes_nothing_and_carries_on_when_back() {
    let _serial = serial();
    // Three NATS nodes that do not advertise each other: the hosts use nodes 1 and 2, the
    // operator node 3 alone, so killing node 3 cuts the operator off and nothing else.
    let nats = Nats::start_with(
        3,
        NatsExtra {
            no_advertise: true,
            ..NatsExtra::default()
        },
    );
    let hosts_url = format!("{},{}", nats.node_url(0), nats.node_url(1));
    let operator_url = nats.node_url(2);
    let hosts = vec![
        start_host(&hosts_url, "h1", &[]),
        start_host(&hosts_url, "h2", &[]),
    ];
    let mut cluster = Cluster::assemble(nats, hosts, Vec::new());
    let kube = Kube::start();
    let op = start_operator_on(&mut cluster, &kube, "op-1", &operator_url);
    kube.apply("steady", &hello_deployment("steady", 2, "still", ""));
    wait_rolled_out(&cluster, &kube, "steady", 2);
    let (before, _) = replica_names(&kube, "steady");

    cluster.nats.kill_node(2);
    // Well past a host's heartbeat timeout: every host looks silent from here.
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_secs(8) {
        let (names, deleting) = replica_names(&kube, "steady");
        assert_eq!(
            names, before,
            "a replica object went while the operator was cut off"
        );
        assert!(
            !deleting,
            "a replica object is being deleted while the operator is cut off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cluster.controllers[op].has_log("not connected to NATS"));
    let body = greeting(&cluster).expect("the replicas serve throughout");
    assert!(body.contains("still"), "{body}");

    cluster.nats.start_node(2);
    cluster.eventually(Duration::from_secs(30), "the operator acts again", || {
        (cluster.controllers[op].count_logs("acting term=") >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        replica_names(&kube, "steady"),
        (before, false),
        "nothing replaced"
    );
    kube.ok(&["scale", "wd/steady", "--replicas=3"]);
    wait_rolled_out(&cluster, &kube, "steady", 3);
}
