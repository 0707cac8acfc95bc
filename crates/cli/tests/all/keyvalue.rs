//! `wasi:keyvalue` end to end through `guests/kv-http`: every operation against the `memory`,
//! `filesystem` and `redis` backends; buckets per workload and `shared`; filesystem values
//! surviving `kill -9` (whole, never torn); Redis going away and coming back; deploy-time and
//! `hearth validate` errors naming their field.

use crate::servers::{Kind, Server};
use crate::support::{Hearth, RawResponse, TempDir, free_port, run_expecting_failure, wasm};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A workload running `kv-http` at `{host}/` and `hello` at `{host}/hello`, with
/// `interfaces` as its `spec.hostInterfaces` YAML (may be empty).
fn kv_workload(name: &str, host: &str, interfaces: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n{interfaces}  components:\n    - name: kv\n      image: {kv}\n      http: {{host: {host}, path: /}}\n    - name: hello\n      image: {hello}\n      http: {{host: {host}, path: /hello}}\n",
        kv = wasm("kv_http"),
        hello = wasm("hello"),
    )
}

/// `spec.hostInterfaces` with one key-value entry; `config` is a YAML flow map's inside.
fn kv_entry(backend: &str, config: &str) -> String {
    format!(
        "  hostInterfaces:\n    - interface: wasi:keyvalue/store\n      backend: {backend}\n      config: {{{config}}}\n"
    )
}

/// Requests against one virtual host of a running hearth.
struct Kv<'a> {
    host: &'a Hearth,
    vhost: &'a str,
}

impl Kv<'_> {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> RawResponse {
        self.host.send(method, self.vhost, path, body)
    }

    /// `GET path`, expecting `200`; the body as text.
    fn ok(&self, path: &str) -> String {
        let r = self.call("GET", path, b"");
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.text()
    }

    fn put(&self, bucket: &str, key: &str, value: &[u8]) {
        let r = self.call("PUT", &format!("/set/{bucket}/{key}"), value);
        assert_eq!(r.status, 200, "set {bucket}/{key}: {}", r.text());
    }

    fn incr(&self, bucket: &str, key: &str, by: u64) -> u64 {
        self.ok(&format!("/incr/{bucket}/{key}?by={by}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// `GET /get/...`: `Some(value)` on `200`, `None` on `404`.
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self.call("GET", &format!("/get/{bucket}/{key}"), b"");
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("get {bucket}/{key}: {s} {}", r.text()),
        }
    }

    fn text(&self, bucket: &str, key: &str) -> Option<String> {
        self.get(bucket, key).map(|v| String::from_utf8(v).unwrap())
    }
}

/// Every operation of store, atomics and batch, as a guest sees them.
fn exercise(kv: &Kv<'_>, paged_exactly: bool) {
    // store: set, get, exists, delete; values are bytes, keys may hold `/` and `%`.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    kv.put("b", "bin", &binary);
    assert_eq!(kv.get("b", "bin"), Some(binary));
    kv.put("b", "a%2Fslash%25", b"v1");
    assert_eq!(kv.text("b", "a%2Fslash%25").as_deref(), Some("v1"));
    kv.put("b", "a%2Fslash%25", b"v2");
    assert_eq!(kv.text("b", "a%2Fslash%25").as_deref(), Some("v2"));
    assert_eq!(kv.ok("/exists/b/bin"), "true\n");
    assert_eq!(kv.ok("/exists/b/nope"), "false\n");
    assert_eq!(kv.get("b", "nope"), None);
    let r = kv.call("DELETE", "/delete/b/bin", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(kv.get("b", "bin"), None);
    let r = kv.call("DELETE", "/delete/b/bin", b"");
    assert_eq!(
        r.status,
        200,
        "deleting an absent key succeeds: {}",
        r.text()
    );
    assert_eq!(kv.ok("/all-keys/b"), "a/slash%\n");
    // Another bucket of the same workload is apart; `open("")` is the `default` bucket.
    assert_eq!(kv.get("other", "a%2Fslash%25"), None);
    kv.put("", "k", b"in default");
    assert_eq!(kv.text("default", "k").as_deref(), Some("in default"));

    // atomics: absent counts as 0; the number is stored as decimal ASCII.
    assert_eq!(kv.incr("c", "n", 1), 1);
    assert_eq!(kv.incr("c", "n", 41), 42);
    assert_eq!(kv.text("c", "n").as_deref(), Some("42"));
    kv.put("c", "s", b"seven");
    let r = kv.call("GET", "/incr/c/s", b"");
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("keyvalue error: other(") && r.text().contains("not a decimal number"),
        "{}",
        r.text()
    );
    let r = kv.call("GET", "/get/c/", b"");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("empty key"), "{}", r.text());

    // batch.
    let r = kv.call("POST", "/set-many/m", b"x=1\ny=2\nz=3\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        kv.ok("/get-many/m?keys=x,nope,z"),
        "x=1\nnope absent\nz=3\n"
    );
    let r = kv.call("POST", "/delete-many/m?keys=x,z,nope", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(kv.ok("/all-keys/m"), "y\n");
    // Empty batches succeed and change nothing, whatever the backend.
    assert_eq!(kv.call("POST", "/set-many/m", b"").status, 200);
    assert_eq!(kv.ok("/get-many/m?keys="), "");
    assert_eq!(kv.call("POST", "/delete-many/m?keys=", b"").status, 200);
    assert_eq!(kv.ok("/all-keys/m"), "y\n");

    // list-keys pages through a bucket larger than one page (1000 keys).
    let body: String = (0..1005).map(|i| format!("k{i:04}=v\n")).collect();
    let r = kv.call("POST", "/set-many/big", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let first = kv.call("GET", "/keys/big", b"");
    assert_eq!(first.status, 200);
    let cursor = first
        .header("x-cursor")
        .expect("a cursor after page 1")
        .to_string();
    if paged_exactly {
        assert_eq!(first.text().lines().count(), 1000);
        assert_eq!(first.text().lines().next(), Some("k0000"));
        let second = kv.ok(&format!("/keys/big?cursor={cursor}"));
        assert_eq!(second.lines().count(), 5);
    }
    let all = kv.ok("/all-keys/big");
    let expected: Vec<String> = (0..1005).map(|i| format!("k{i:04}")).collect();
    assert_eq!(all.lines().collect::<Vec<_>>(), expected);
}

/// Workloads `{p}-one` and `{p}-two` both list `common` as shared; `{p}-three` does not.
/// Buckets of the same name are apart, except `common` between one and two.
fn isolation(host: &Hearth, p: &str) {
    let names = ["one", "two", "three"].map(|n| format!("{p}-{n}.test"));
    let [one, two, three] = names.each_ref().map(|vhost| Kv { host, vhost });
    for _ in 0..3 {
        one.incr("counter", "n", 1);
    }
    assert_eq!(two.get("counter", "n"), None, "two sees one's counter");
    assert_eq!(two.incr("counter", "n", 1), 1);
    assert_eq!(one.text("counter", "n").as_deref(), Some("3"));
    assert_eq!(three.get("counter", "n"), None);

    one.put("common", "greeting", b"hello from one");
    assert_eq!(
        two.text("common", "greeting").as_deref(),
        Some("hello from one")
    );
    assert_eq!(two.incr("common", "hits", 5), 5);
    assert_eq!(one.incr("common", "hits", 1), 6);
    assert_eq!(
        three.get("common", "greeting"),
        None,
        "three did not list `common`"
    );
}

/// A manifest with the three workloads of [`isolation`] on one backend.
fn isolation_manifest(p: &str, backend: &str, config: &str) -> String {
    let shared = if config.is_empty() {
        "shared: [common]".to_string()
    } else {
        format!("{config}, shared: [common]")
    };
    [
        kv_workload(
            &format!("{p}-one"),
            &format!("{p}-one.test"),
            &kv_entry(backend, &shared),
        ),
        kv_workload(
            &format!("{p}-two"),
            &format!("{p}-two.test"),
            &kv_entry(backend, &shared),
        ),
        kv_workload(
            &format!("{p}-three"),
            &format!("{p}-three.test"),
            &kv_entry(backend, config),
        ),
    ]
    .join("---\n")
}

#[test]
fn memory_backend_serves_every_operation_and_keeps_workloads_apart() {
    let dir = TempDir::new("kv-mem");
    // The default (no hostInterfaces) is the memory backend.
    let a = dir.write("a.yaml", kv_workload("kvmem", "mem.test", ""));
    let b = dir.write("b.yaml", isolation_manifest("mem", "memory", ""));
    let host = Hearth::start(&[&a, &b]);
    exercise(
        &Kv {
            host: &host,
            vhost: "mem.test",
        },
        true,
    );
    isolation(&host, "mem");
}

#[test]
fn filesystem_backend_serves_every_operation_and_keeps_workloads_apart() {
    let dir = TempDir::new("kv-fs");
    let data = dir.0.join("data");
    let path = format!("path: \"{}\"", data.display());
    let mut a = kv_workload("kvfs", "fs.test", &kv_entry("filesystem", &path));
    // A component's own entry overrides the workload's: this one keeps its data in memory.
    a.push_str(&format!(
        "    - name: mem\n      image: {}\n      http: {{host: fsmem.test, path: /}}\n      hostInterfaces:\n        - {{interface: wasi:keyvalue, backend: memory}}\n",
        wasm("kv_http")
    ));
    let a = dir.write("a.yaml", a);
    let b = dir.write("b.yaml", isolation_manifest("fs", "filesystem", &path));
    let host = Hearth::start(&[&a, &b]);
    let kv = Kv {
        host: &host,
        vhost: "fs.test",
    };
    exercise(&kv, true);
    isolation(&host, "fs");

    // One file per key, holding exactly the value; names percent-encoded.
    assert_eq!(std::fs::read(data.join("kvfs/c/n")).unwrap(), b"42");
    assert_eq!(
        std::fs::read(data.join("kvfs/b/a%2Fslash%25")).unwrap(),
        b"v2"
    );
    assert_eq!(
        std::fs::read(data.join("_shared/common/hits")).unwrap(),
        b"6"
    );
    assert!(!data.join("kvfs/b/bin").exists());

    // The overriding component sees its own (memory) store, not the files.
    let mem = Kv {
        host: &host,
        vhost: "fsmem.test",
    };
    assert_eq!(mem.get("c", "n"), None);
    mem.put("c", "only-in-memory", b"1");
    assert!(!data.join("kvfs/c/only-in-memory").exists());
    assert_eq!(kv.get("c", "only-in-memory"), None);
}

#[test]
fn redis_backend_serves_every_operation_and_keeps_workloads_apart() {
    let redis = Server::start(Kind::Redis);
    let dir = TempDir::new("kv-redis");
    let url = format!("url: \"{}\"", redis.url());
    let a = dir.write(
        "a.yaml",
        kv_workload("kvredis", "redis.test", &kv_entry("redis", &url)),
    );
    let b = dir.write("b.yaml", isolation_manifest("rd", "redis", &url));
    let host = Hearth::start(&[&a, &b]);
    exercise(
        &Kv {
            host: &host,
            vhost: "redis.test",
        },
        false,
    );
    isolation(&host, "rd");

    // One hash per bucket, the keys its fields.
    let mut probe = Resp::connect(redis.port);
    assert_eq!(probe.command(&["HGET", "hearth:kv:kvredis/c", "n"]), "42");
    assert_eq!(
        probe.command(&["HGET", "hearth:kv:_shared/common", "hits"]),
        "6"
    );
    assert_eq!(probe.command(&["HLEN", "hearth:kv:kvredis/big"]), "1005");
}

#[test]
fn filesystem_counter_survives_kill_9() {
    let dir = TempDir::new("kv-fs-kill");
    let data = dir.0.join("data");
    let m = dir.write(
        "w.yaml",
        kv_workload(
            "kvkill",
            "kill.test",
            &kv_entry("filesystem", &format!("path: \"{}\"", data.display())),
        ),
    );
    let mut host = Hearth::start(&[&m]);
    let kv = Kv {
        host: &host,
        vhost: "kill.test",
    };
    for i in 1..=25 {
        assert_eq!(kv.incr("counter", "hits", 1), i);
    }
    host.signal("KILL");
    host.wait(Duration::from_secs(10));

    let host = Hearth::start(&[&m]);
    let kv = Kv {
        host: &host,
        vhost: "kill.test",
    };
    assert_eq!(kv.text("counter", "hits").as_deref(), Some("25"));
    assert_eq!(kv.incr("counter", "hits", 1), 26);
}

/// The value writer `n` stores: its number, a length that varies with `n`, and an end mark,
/// so a truncated or mixed value is recognisable.
fn framed(n: u64) -> Vec<u8> {
    let mut v = format!("{n:010}|").into_bytes();
    v.resize(
        11 + 1000 + (n as usize * 7919) % 600_000,
        b'a' + (n % 26) as u8,
    );
    v.extend_from_slice(b"|end");
    v
}

fn check_framed(key: &str, value: &[u8]) {
    let n: u64 = std::str::from_utf8(&value[..10.min(value.len())])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{key}: no header in {} bytes", value.len()));
    assert!(
        value == framed(n).as_slice(),
        "{key}: value #{n} is torn ({} bytes)",
        value.len()
    );
}

/// One request that may fail (the host is being killed): whether it got a `200`.
fn try_send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: torn.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        let mut head = String::new();
        BufReader::new(&mut s).read_line(&mut head)?;
        Ok(head.starts_with("HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}

#[test]
fn filesystem_values_are_whole_after_kill_9_mid_write() {
    let dir = TempDir::new("kv-fs-torn");
    let data = dir.0.join("data");
    let m = dir.write(
        "w.yaml",
        kv_workload(
            "kvtorn",
            "torn.test",
            &kv_entry("filesystem", &format!("path: \"{}\"", data.display())),
        ),
    );
    let mut host = Hearth::start(&[&m]);
    let addr = host.http;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (stop, acked, counted) =
                (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&counted));
            std::thread::spawn(move || {
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/set/torn/k{}", n % 6);
                    if try_send(addr, "PUT", &path, &framed(n)) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    if try_send(addr, "POST", "/incr/torn/count", b"") {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 4;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.load(Ordering::Relaxed) < 40 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.signal("KILL"); // while the writers are still going
    host.wait(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    // On disk: every value file is one whole value (temporaries may remain; they start with `.`).
    let bucket = data.join("kvtorn/torn");
    let (mut checked, mut temporaries) = (0, 0);
    for entry in std::fs::read_dir(&bucket).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with('.') {
            temporaries += 1;
            continue;
        }
        let value = std::fs::read(entry.path()).unwrap();
        if name == "count" {
            // Every increment the guest answered `200` for was on disk before the answer.
            let count: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
            assert!(
                count >= counted.load(Ordering::Relaxed),
                "{count} < acknowledged"
            );
        } else {
            check_framed(&name, &value);
            checked += 1;
        }
    }
    assert!(checked > 0, "no values written");
    eprintln!("{checked} whole values, {temporaries} leftover temporaries after kill -9");

    // Through a fresh host: the same whole values, and no leftovers listed as keys.
    let host = Hearth::start(&[&m]);
    let kv = Kv {
        host: &host,
        vhost: "torn.test",
    };
    let keys = kv.ok("/all-keys/torn");
    assert_eq!(keys.lines().count(), checked + 1, "{keys}");
    for key in keys.lines().filter(|k| *k != "count") {
        check_framed(key, &kv.get("torn", key).unwrap());
    }
    assert!(
        std::fs::read_dir(&bucket).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp.")),
        "stale temporaries are swept when the directory is opened again"
    );
}

#[test]
fn redis_outage_gives_the_guest_an_error_and_the_host_recovers() {
    let mut redis = Server::start(Kind::Redis);
    let dir = TempDir::new("kv-redis-down");
    let m = dir.write(
        "w.yaml",
        kv_workload(
            "kvdown",
            "down.test",
            &kv_entry("redis", &format!("url: \"{}\"", redis.url())),
        ),
    );
    let host = Hearth::start(&[&m]);
    let kv = Kv {
        host: &host,
        vhost: "down.test",
    };
    assert_eq!(kv.incr("counter", "n", 1), 1);

    redis.kill();
    let started = Instant::now();
    let r = kv.call("GET", "/incr/counter/n", b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text()
            .contains(&format!("keyvalue error: other(redis at {}", redis.url())),
        "{}",
        r.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Still down: every attempt fails quickly, and other routes still serve.
    for _ in 0..3 {
        let started = Instant::now();
        let r = kv.call("GET", "/get/counter/n", b"");
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(host.get("down.test", "/hello").status, 200);

    // Redis is back (empty: it keeps nothing on disk): the same request succeeds again.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = kv.call("GET", "/incr/counter/n", b"");
        if r.status == 200 {
            assert_eq!(r.text(), "1\n");
            break;
        }
        assert!(Instant::now() < deadline, "still {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 2..12 {
        assert_eq!(kv.incr("counter", "n", 1), i);
    }

    // A restart nobody noticed: every worker's idle connection died with the old server.
    // An idle connection is checked (PING) before an increment, which is not safe to resend,
    // so no guest sees an error for it.
    redis.restart();
    std::thread::sleep(Duration::from_millis(1100));
    for i in 1..=10 {
        assert_eq!(kv.incr("counter", "n", 1), i);
    }
}

#[test]
fn unusable_backends_fail_the_deploy_naming_the_field() {
    let dir = TempDir::new("kv-deploy");
    let port = free_port();
    let m = dir.write(
        "redis.yaml",
        kv_workload(
            "kvnoredis",
            "x.test",
            &kv_entry("redis", &format!("url: \"redis://127.0.0.1:{port}\"")),
        ),
    );
    let err = run_expecting_failure(&m);
    assert!(err.contains("hostInterfaces[0].config.url"), "{err}");
    assert!(
        err.contains(&format!("cannot reach Redis at redis://127.0.0.1:{port}")),
        "{err}"
    );

    // A directory that cannot be created: its parent is a file.
    let file = dir.write("not-a-dir", "x");
    let m = dir.write(
        "fs.yaml",
        kv_workload(
            "kvnofs",
            "x.test",
            &kv_entry("filesystem", &format!("path: \"{}/kv\"", file.display())),
        ),
    );
    let err = run_expecting_failure(&m);
    assert!(err.contains("hostInterfaces[0].config.path"), "{err}");
    assert!(err.contains("cannot use"), "{err}");
}

/// `hearth validate` on a manifest with `interfaces`: (exit code, stderr).
fn validate(dir: &TempDir, name: &str, interfaces: &str) -> (i32, String) {
    let m = dir.write(name, kv_workload("kvbad", "x.test", interfaces));
    let (code, _, err) = crate::support::hearth_cmd(&["validate", m.to_str().unwrap()]);
    (code, err)
}

#[test]
fn validate_names_the_bad_field() {
    let dir = TempDir::new("kv-validate");
    let (code, err) = validate(
        &dir,
        "ok.yaml",
        &kv_entry("filesystem", "path: /tmp/x, shared: [a, b]"),
    );
    assert_eq!(code, 0, "{err}");

    let cases = [
        (
            kv_entry("etcd", ""),
            "spec.hostInterfaces[0].backend",
            "unknown backend `etcd`",
        ),
        (
            kv_entry("filesystem", "path: /tmp/x, colour: blue"),
            "spec.hostInterfaces[0].config.colour",
            "unknown key: expected one of path, shared",
        ),
        (
            kv_entry("filesystem", ""),
            "spec.hostInterfaces[0].config.path",
            "missing",
        ),
        (
            kv_entry("redis", ""),
            "spec.hostInterfaces[0].config.url",
            "missing",
        ),
        (
            kv_entry("redis", "url: \"http://127.0.0.1:6379\""),
            "spec.hostInterfaces[0].config.url",
            "expected a URL starting with `redis://`",
        ),
        (
            kv_entry("memory", "shared: common"),
            "spec.hostInterfaces[0].config.shared",
            "expected a list of bucket names",
        ),
        (
            kv_entry("memory", "path: /tmp"),
            "spec.hostInterfaces[0].config.path",
            "unknown key",
        ),
    ];
    for (i, (interfaces, field, message)) in cases.iter().enumerate() {
        let (code, err) = validate(&dir, &format!("bad{i}.yaml"), interfaces);
        assert_eq!(code, 2, "case {i}: {err}");
        assert!(err.contains(field), "case {i}: expected {field} in:\n{err}");
        assert!(
            err.contains(message),
            "case {i}: expected {message:?} in:\n{err}"
        );
    }
}

/// A minimal RESP client, to look at what the host stored in Redis.
struct Resp(BufReader<TcpStream>);

impl Resp {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self(BufReader::new(s))
    }

    /// Sends one command; the reply as text (integers and bulk strings).
    fn command(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(out.as_bytes()).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b':') | Some(b'+') => line[1..].to_string(),
            Some(b'$') => {
                let n: usize = line[1..].parse().unwrap();
                let mut buf = vec![0; n + 2];
                self.0.read_exact(&mut buf).unwrap();
                String::from_utf8(buf[..n].to_vec()).unwrap()
            }
            _ => panic!("unexpected reply {line:?}"),
        }
    }
}
