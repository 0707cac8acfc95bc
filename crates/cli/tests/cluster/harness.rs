//! A cluster on loopback for the tests: real `nats-server` processes (one, or three with
//! JetStream clustering), real `hearth host` and `hearth controller` processes, and the
//! `hearth` CLI against them. Everything is killed on drop.

use crate::support::{TempDir, free_port, guests, wasm};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cluster tests take ports, cores and timing; one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn nats_binary() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server");
    if local.exists() {
        local
    } else {
        PathBuf::from("nats-server")
    }
}

/// A child process whose stderr lines are kept.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            name: name.to_string(),
            child: Some(child),
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn has_log(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Log lines containing `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.has_log(needle) {
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before logging `{needle}`:\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no `{needle}` within {within:?}:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status, if it has exited.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        // `try_wait` needs `&mut`; a cloned pid check is enough for a poll.
        let pid = self.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // A zombie has exited.
        if stat.split(' ').nth(2) == Some("Z") {
            Some(std::process::ExitStatus::default())
        } else {
            None
        }
    }

    /// Waits for the process to exit on its own; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.name);
    }

    /// `kill -9`, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process must be continued to die cleanly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// One NATS node.
struct Node {
    name: String,
    config: PathBuf,
    ip: String,
    port: u16,
    proc: Option<Proc>,
}

/// One `nats-server`, or a JetStream cluster of three.
pub struct Nats {
    nodes: Vec<Node>,
    _dir: TempDir,
}

/// Extra server settings (auth, TLS) for [`Nats::start_with`], appended to each node's
/// configuration.
#[derive(Default)]
pub struct NatsExtra {
    pub text: String,
    /// Servers do not tell clients about the other nodes, so a client stays on the nodes
    /// its URL names (a way to cut one process off while the rest stay connected).
    pub no_advertise: bool,
}

impl Nats {
    pub fn start(nodes: usize) -> Self {
        Self::start_with(nodes, NatsExtra::default())
    }

    pub fn start_with(count: usize, extra: NatsExtra) -> Self {
        Self::start_on("127.0.0.1", count, extra)
    }

    /// Nodes listening for clients on `ip` (an address of this network namespace).
    pub fn start_on(ip: &str, count: usize, extra: NatsExtra) -> Self {
        let dir = TempDir::new("nats");
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, route_port)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.0.join(&name);
            let mut text = format!(
                "server_name: {name}\nlisten: {ip}:{port}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 512MB }}\n",
                store.display()
            );
            if count > 1 {
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, r))| format!("nats-route://127.0.0.1:{r}"))
                    .collect();
                text.push_str(&format!(
                    "cluster {{ name: hearth, listen: 127.0.0.1:{route_port}, routes: [{}], no_advertise: {} }}\n",
                    routes.join(", "),
                    extra.no_advertise
                ));
            }
            text.push_str(&extra.text);
            let config = dir.write(&format!("{name}.conf"), text);
            nodes.push(Node {
                name,
                config,
                ip: ip.to_string(),
                port: *port,
                proc: None,
            });
        }
        let mut nats = Self { nodes, _dir: dir };
        for i in 0..count {
            nats.start_node(i);
        }
        nats
    }

    /// Starts node `i` (again) and waits until it accepts connections.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut command = Command::new(nats_binary());
        command.arg("-c").arg(&node.config);
        node.proc = Some(Proc::spawn(&node.name, command));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((node.ip.as_str(), node.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats {} did not start",
                node.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to node `i` (`STOP` freezes it: connections hang instead of closing).
    pub fn signal_node(&self, i: usize, sig: &str) {
        if let Some(p) = &self.nodes[i].proc {
            p.signal(sig);
        }
    }

    /// `kill -9` of node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill();
        }
    }

    /// Every node's client URL, comma-separated, with `scheme`.
    pub fn url_with(&self, scheme: &str) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{scheme}://{}:{}", n.ip, n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn url(&self) -> String {
        self.url_with("nats")
    }

    /// Node `i`'s client URL alone.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://{}:{}", self.nodes[i].ip, self.nodes[i].port)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// A `hearth host`.
pub struct Host {
    pub id: String,
    pub http: SocketAddr,
    pub proc: Proc,
}

/// The compile cache the hosts share, so each guest compiles once per test run.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/hearth-test-cache")
}

/// Starts `hearth host` with `args` (after `--nats URL`) on a free HTTP port.
pub fn start_host(url: &str, id: &str, extra: &[&str]) -> Host {
    start_host_in(None, "127.0.0.1", url, id, extra)
}

/// [`start_host`] inside network namespace `netns` (when given), serving HTTP on `ip`.
pub fn start_host_in(netns: Option<&str>, ip: &str, url: &str, id: &str, extra: &[&str]) -> Host {
    guests();
    let port = free_port();
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_hearth")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hearth")),
    };
    command
        .args(["host", "--nats", url, "--host-id", id])
        .args(["--http", &format!("{ip}:{port}")])
        .args(["--max-instances", "100", "--drain-timeout", "5"])
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(extra)
        .env("RUST_LOG", "info");
    let proc = Proc::spawn(id, command);
    Host {
        id: id.to_string(),
        http: SocketAddr::new(ip.parse().unwrap(), port),
        proc,
    }
}

/// Starts `hearth controller`.
pub fn start_controller(url: &str, id: &str) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["controller", "--nats", url, "--id", id])
        .env("RUST_LOG", "info");
    Proc::spawn(id, command)
}

/// NATS, hosts and controllers.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub controllers: Vec<Proc>,
    pub nats: Nats,
    pub dir: TempDir,
}

impl Cluster {
    /// `nodes` NATS nodes, hosts `h1..` with the given labels, `controllers` controllers;
    /// returns once every host is joined and the store answers.
    pub fn start(nodes: usize, hosts: &[&[&str]], controllers: usize) -> Self {
        let nats = Nats::start(nodes);
        let url = nats.url();
        let hosts: Vec<Host> = hosts
            .iter()
            .enumerate()
            .map(|(i, extra)| start_host(&url, &format!("h{}", i + 1), extra))
            .collect();
        let controllers = (0..controllers)
            .map(|i| start_controller(&url, &format!("c{}", i + 1)))
            .collect();
        Self::assemble(nats, hosts, controllers)
    }

    /// A cluster of processes started by the caller; returns once every host is joined and
    /// the store answers.
    pub fn assemble(nats: Nats, hosts: Vec<Host>, controllers: Vec<Proc>) -> Self {
        let cluster = Self {
            hosts,
            controllers,
            nats,
            dir: TempDir::new("cluster"),
        };
        for h in &cluster.hosts {
            h.proc
                .wait_log("joined the cluster", Duration::from_secs(60));
        }
        // JetStream in a fresh cluster needs a moment to elect its leaders.
        cluster.eventually(Duration::from_secs(30), "the store answers", || {
            (cli(&cluster.url(), &["get", "deployments"]).0 == 0).then_some(())
        });
        cluster
    }

    pub fn url(&self) -> String {
        self.nats.url()
    }

    pub fn host(&self, id: &str) -> &Host {
        self.hosts.iter().find(|h| h.id == id).unwrap()
    }

    /// `hearth ARGS --cluster URL` → (code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        cli(&self.url(), args)
    }

    /// Applies a manifest text; its stdout.
    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let file = self.dir.write(&format!("{name}.yaml"), yaml);
        let (code, out, err) = self.cli(&["apply", "-f", file.to_str().unwrap()]);
        assert_eq!(code, 0, "apply failed: {out}{err}");
        out
    }

    /// `get deployments -o json`, one deployment.
    pub fn deployment(&self, name: &str) -> serde_json::Value {
        let (code, out, err) = self.cli(&["get", "deployments", name, "-o", "json"]);
        assert_eq!(code, 0, "get failed: {err}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        list[0].clone()
    }

    /// [`Cluster::deployment`], or `None` while the store does not answer (NATS nodes
    /// restarting, JetStream electing leaders).
    pub fn try_deployment(&self, name: &str) -> Option<serde_json::Value> {
        let (code, out, _) = self.cli(&["get", "deployments", name, "-o", "json"]);
        let list: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| code == 0)?;
        Some(list[0].clone())
    }

    /// (replica, host, state) of a deployment, as its status says.
    pub fn placements(&self, name: &str) -> Vec<(String, String, String)> {
        let d = self.try_deployment(name).unwrap_or_default();
        d["status"]["placements"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| {
                        (
                            p["replica"].as_str().unwrap_or_default().to_string(),
                            p["host"].as_str().unwrap_or_default().to_string(),
                            p["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `name` has exactly `n` replicas, all ready, at its current revision;
    /// their hosts.
    pub fn wait_ready(&self, name: &str, n: usize, within: Duration) -> Vec<String> {
        self.eventually(within, &format!("{n} ready replicas of {name}"), || {
            let d = self.try_deployment(name)?;
            let s = &d["status"];
            let placements = self.placements(name);
            let all_ready =
                placements.len() == n && placements.iter().all(|(_, _, st)| st == "ready");
            (all_ready && s["availableReplicas"] == n && s["observedGeneration"] == d["generation"])
                .then(|| {
                    let mut hosts: Vec<String> =
                        placements.into_iter().map(|(_, h, _)| h).collect();
                    hosts.sort();
                    hosts
                })
        })
    }

    /// Waits until `name` has exactly `n` replicas, all ready, none on host `gone`.
    pub fn wait_ready_elsewhere(&self, name: &str, n: usize, gone: &str, within: Duration) {
        self.eventually(
            within,
            &format!("{n} ready replicas of {name}, none on {gone}"),
            || {
                let placements = self.placements(name);
                (placements.len() == n
                    && placements
                        .iter()
                        .all(|(_, host, state)| host != gone && state == "ready"))
                .then_some(())
            },
        );
    }

    /// Every host's heartbeat (`get hosts -o json`), and the replicas of `deployment` they
    /// report in `state` (any state when `None`), summed; `None` while the store does not answer.
    pub fn reported(&self, deployment: &str, state: Option<&str>) -> Option<(usize, usize)> {
        let (code, out, _) = self.cli(&["get", "hosts", "-o", "json"]);
        let hosts: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| code == 0)?;
        let hosts = hosts.as_array()?;
        let replicas = hosts
            .iter()
            .flat_map(|h| h["replicas"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["deployment"] == deployment && state.is_none_or(|s| r["state"] == s))
            .count();
        Some((hosts.len(), replicas))
    }

    /// Polls `check` until it returns `Some`, or fails naming `what` and the logs.
    pub fn eventually<T>(
        &self,
        within: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() > deadline {
                let mut logs = String::new();
                for c in &self.controllers {
                    logs.push_str(&format!("--- {}\n{}\n", c.name, tail(&c.logs(), 40)));
                }
                for h in &self.hosts {
                    logs.push_str(&format!("--- {}\n{}\n", h.id, tail(&h.proc.logs(), 20)));
                }
                panic!("not within {within:?}: {what}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `hearth ARGS --cluster URL` → (code, stdout, stderr).
pub fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .args(["--cluster", url])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `WorkloadDeployment` of the hello guest answering `greeting` at `/`.
pub fn hello_deployment(name: &str, replicas: u32, greeting: &str, extra_spec: &str) -> String {
    hello_deployment_at("/", name, replicas, greeting, extra_spec)
}

/// [`hello_deployment`] routed at `path`.
pub fn hello_deployment_at(
    path: &str,
    name: &str,
    replicas: u32,
    greeting: &str,
    extra_spec: &str,
) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
{extra_spec}  template:
    spec:
      components:
        - name: hello
          image: {}
          http: {{ path: {path} }}
          env: {{ GREETING: \"{greeting}\" }}
",
        wasm("hello")
    )
}

/// One `GET path` on a fresh connection: (status, body), or why it failed.
pub fn try_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// What one request got: (status, body), or why it failed.
pub type Outcome = Result<(u16, String), String>;

/// Requests sent in a loop from a thread until stopped: what came back.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// `clients` threads, each sending `GET /` to `targets` in turn, at most `max` each and
    /// for at most two minutes.
    pub fn start(targets: &[SocketAddr], clients: usize, max: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|c| {
                let stop = Arc::clone(&stop);
                let targets = targets.to_vec();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut results = Vec::new();
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed)
                        && results.len() < max
                        && started.elapsed() < Duration::from_secs(120)
                    {
                        results.push(try_get(targets[i % targets.len()], "/"));
                        i += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    results
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops the clients; every result.
    pub fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// The failures among `results`, summarised.
pub fn failures(results: &[Outcome]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| match r {
            Ok((status, _)) if (200..300).contains(status) => None,
            Ok((status, body)) => Some(format!("{status} {}", body.trim())),
            Err(e) => Some(e.clone()),
        })
        .collect()
}

/// Follows every host's heartbeats and records the most replicas of one deployment that
/// existed at once (in any state), summing each host's latest report.
pub struct ReplicaWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl ReplicaWatch {
    pub fn start(url: &str, deployment: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            let url = url.to_string();
            let deployment = deployment.to_string();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use futures::StreamExt;
                    let servers: Vec<&str> = url.split(',').collect();
                    let client = async_nats::connect(servers).await.unwrap();
                    let mut sub = client.subscribe("hearth.v1.heartbeat.*").await.unwrap();
                    ready_tx.send(()).unwrap();
                    let mut latest = std::collections::HashMap::<String, usize>::new();
                    let mut most = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let next =
                            tokio::time::timeout(Duration::from_millis(100), sub.next()).await;
                        let Ok(Some(message)) = next else { continue };
                        let hb: serde_json::Value =
                            serde_json::from_slice(&message.payload).unwrap();
                        let mine = hb["replicas"].as_array().map_or(0, |r| {
                            r.iter().filter(|r| r["deployment"] == *deployment).count()
                        });
                        latest.insert(hb["hostId"].as_str().unwrap_or_default().to_string(), mine);
                        most = most.max(latest.values().sum());
                    }
                    most
                })
            })
        };
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self { stop, thread }
    }

    /// Stops watching; the most replicas seen at once.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A request over a raw NATS client (outside hearth): the reply's payload as text.
pub fn nats_request(url: &str, subject: &str, payload: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let servers: Vec<&str> = url.split(',').collect();
        let client = async_nats::connect(servers).await.unwrap();
        let reply = client
            .request(subject.to_string(), payload.to_string().into())
            .await
            .unwrap();
        String::from_utf8_lossy(&reply.payload).into_owned()
    })
}

/// The number after `key=` in the first log line of `proc` containing `needle`.
pub fn logged_number(proc: &Proc, needle: &str, key: &str) -> Option<u64> {
    let logs = proc.logs();
    let line = logs.lines().find(|l| l.contains(needle))?;
    let rest = &line[line.find(&format!("{key}="))? + key.len() + 1..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
