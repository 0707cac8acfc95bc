//! The lifecycle API on a live host: apply, update under load, delete, and the door in
//! front of them (bearer token, body limit, public bind refused).

use crate::support::{Hearth, TempDir, free_port, hearth_cmd, wasm};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-admin-token";

/// A workload with one `hello` component on `host`, greeting with `greeting`.
fn hello(name: &str, host: &str, greeting: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: web\n      image: {}\n      http: {{ host: {host} }}\n      env: {{ GREETING: \"{greeting}\" }}\n",
        wasm("hello")
    )
}

/// The cache pair (`cache_http` + `cache_service` on 6380), the service published on
/// `publish`, the component's `env` extended by `tag` (a change that keeps the service).
fn cache(name: &str, host: &str, publish: u16, tag: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: web\n      image: {}\n      http: {{ host: {host} }}\n      env: {{ CACHE_PORT: \"6380\", TAG: \"{tag}\" }}\n  service:\n    image: {}\n    env: {{ CACHE_PORT: \"6380\" }}\n    ports: [{{ port: 6380, publish: {publish} }}]\n",
        wasm("cache_http"),
        wasm("cache_service")
    )
}

fn json(r: &crate::support::RawResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// Waits until `probe` is true, up to `within`.
fn wait_until(within: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_empty_host_takes_a_workload_and_an_update_under_load_drops_nothing() {
    let host = Hearth::with_token(TOKEN, &[]);
    assert_eq!(
        host.get("v.localhost", "/").status,
        404,
        "an empty host routes nothing"
    );
    let r = host.apply("ver", &hello("ver", "v.localhost", "v1"), 201);
    assert_eq!(json(&r)["result"], "created");
    assert_eq!(host.get("v.localhost", "/").body, "v1\n");

    // Load: 8 connections' worth of requests, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (stop, seen, addr) = (Arc::clone(&stop), Arc::clone(&seen), host.http);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let r = crate::support::request(addr, "v.localhost", "/");
                    seen.lock().unwrap().push((r.status, r.body));
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "load to start", || {
        seen.lock().unwrap().len() > 50
    });
    let r = host.apply("ver", &hello("ver", "v.localhost", "v2"), 200);
    assert_eq!(
        (json(&r)["result"].as_str(), json(&r)["generation"].as_u64()),
        (Some("configured"), Some(2))
    );
    // Once PUT answered, the new version serves.
    assert_eq!(host.get("v.localhost", "/").body, "v2\n");
    let after = seen.lock().unwrap().len();
    wait_until(Duration::from_secs(10), "load after the update", || {
        seen.lock().unwrap().len() > after + 50
    });
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());

    let seen = seen.lock().unwrap();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    let first_v2 = seen
        .iter()
        .position(|(_, b)| b == "v2\n")
        .expect("v2 never served");
    assert!(seen[..first_v2].iter().all(|(_, b)| b == "v1\n"));
    assert!(
        seen[first_v2..].iter().filter(|(_, b)| b == "v1\n").count() <= 8,
        "at most the requests in flight at the swap finish on v1"
    );
    assert!(first_v2 > 0, "v1 served first");

    // The same document again changes nothing.
    let r = host.apply("ver", &hello("ver", "v.localhost", "v2"), 200);
    assert_eq!(json(&r)["result"], "unchanged");
    let status = json(&host.admin_send("GET", "/v1/workloads/ver", b""));
    assert_eq!(status["generation"], 2, "{status}");
    assert_eq!(status["components"][0]["stats"]["failed"], 0, "{status}");
}

#[test]
fn an_update_that_keeps_the_service_keeps_its_state_and_its_connections() {
    let host = Hearth::with_token(TOKEN, &[]);
    let port = free_port();
    host.apply("kv", &cache("kv", "kv.localhost", port, "a"), 201);
    assert_eq!(host.get("kv.localhost", "/incr/hits").body, "INT 1\n");
    // A client connected to the published port, across the update.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap());
    let mut ask = |cmd: &str| {
        writeln!(conn, "{cmd}").unwrap();
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        line
    };
    assert_eq!(ask("INCR hits"), "INT 2\n");

    host.apply("kv", &cache("kv", "kv.localhost", port, "b"), 200);
    let status = json(&host.admin_send("GET", "/v1/workloads/kv", b""));
    assert_eq!(status["generation"], 2, "{status}");
    assert_eq!(
        status["service"]["restarts"], 0,
        "the service was kept: {status}"
    );
    assert_eq!(
        ask("INCR hits"),
        "INT 3\n",
        "the open connection survives the update"
    );
    assert_eq!(
        host.get("kv.localhost", "/incr/hits").body,
        "INT 4\n",
        "state survives"
    );

    // A change to the service itself replaces it (fresh state), on the same published port.
    let changed = cache("kv", "kv.localhost", port, "b").replace(
        "    env: { CACHE_PORT: \"6380\" }\n    ports",
        "    env: { CACHE_PORT: \"6380\", V: \"2\" }\n    ports",
    );
    host.apply("kv", &changed, 200);
    crate::services::wait_status(&host, "kv", Duration::from_secs(10), |s| {
        crate::services::listening_on(s, 6380)
    });
    assert_eq!(
        host.get("kv.localhost", "/incr/hits").body,
        "INT 1\n",
        "a new service starts empty"
    );
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(fresh, "GET hits").unwrap();
    let mut line = String::new();
    BufReader::new(fresh).read_line(&mut line).unwrap();
    assert_eq!(
        line, "VALUE 1\n",
        "the published port reaches the new service"
    );
}

#[test]
fn a_failed_update_answers_the_error_and_the_old_version_keeps_serving() {
    let host = Hearth::with_token(TOKEN, &[]);
    host.apply("keep", &hello("keep", "keep.localhost", "v1"), 201);
    let dir = TempDir::new("broken");
    let broken = dir.write("broken.wasm", b"\0asm\x0d\0\x01\0 this is not a component");
    let bad =
        hello("keep", "keep.localhost", "v2").replace(&wasm("hello"), broken.to_str().unwrap());
    let r = host.apply("keep", &bad, 422);
    assert!(
        r.text().contains("spec.components[0].image: `")
            && r.text().contains("is not a valid component"),
        "{}",
        r.text()
    );
    assert_eq!(host.get("keep.localhost", "/").body, "v1\n");
    let status = json(&host.admin_send("GET", "/v1/workloads/keep", b""));
    assert_eq!(status["generation"], 1, "{status}");

    // Malformed documents are 400 with the manifest's own error text.
    let r = host.apply("keep", "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: keep }\nspec:\n  components:\n    - name: web\n      imag: x.wasm\n", 400);
    assert!(
        r.text()
            .contains("keep (request body): spec.components[0].imag: unknown field `imag`"),
        "{}",
        r.text()
    );
    let r = host.apply("other", &hello("keep", "keep.localhost", "v1"), 400);
    assert!(
        r.text()
            .contains("metadata.name: `keep` does not match the request path's `other`"),
        "{}",
        r.text()
    );
    // A route another workload serves is a conflict.
    let r = host.apply("thief", &hello("thief", "keep.localhost", "x"), 409);
    assert!(
        r.text()
            .contains("route `keep.localhost/` is already served by workload `keep`"),
        "{}",
        r.text()
    );
    assert_eq!(host.get("keep.localhost", "/").body, "v1\n");
}

#[test]
fn delete_stops_routing_lets_requests_finish_and_frees_published_ports() {
    let host = Hearth::with_token(TOKEN, &[]);
    let port = free_port();
    host.apply("gone", &cache("gone", "gone.localhost", port, "a"), 201);
    let faults = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: slow\nspec:\n  components:\n    - name: f\n      image: {}\n      http: {{ host: slow.localhost }}\n",
        wasm("faults")
    );
    host.apply("slow", &faults, 201);
    assert_eq!(host.get("gone.localhost", "/incr/x").body, "INT 1\n");

    // A request in flight when the delete comes finishes.
    let addr = host.http;
    let slow = std::thread::spawn(move || {
        crate::support::request(addr, "slow.localhost", "/faults/sleep/1500")
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = host.admin_send("DELETE", "/v1/workloads/slow", b"");
    assert_eq!(
        (r.status, json(&r)["result"].as_str()),
        (200, Some("deleted"))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "DELETE waited for the request in flight"
    );
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request finished: {}", r.body);
    assert_eq!(host.get("slow.localhost", "/faults/ok").status, 404);

    let r = host.admin_send("DELETE", "/v1/workloads/gone", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(host.get("gone.localhost", "/incr/x").status, 404);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the published port is free again");
    assert_eq!(
        host.admin_send("DELETE", "/v1/workloads/gone", b"").status,
        404
    );
    assert_eq!(
        host.admin_send("GET", "/v1/workloads/gone", b"").status,
        404
    );
    // Gone means gone: the same name can be created again.
    host.apply("gone", &cache("gone", "gone.localhost", port, "a"), 201);
    assert_eq!(host.get("gone.localhost", "/incr/x").body, "INT 1\n");
}

#[test]
fn twenty_concurrent_applies_all_land() {
    let host = Arc::new(Hearth::with_token(TOKEN, &[]));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let host = Arc::clone(&host);
            std::thread::spawn(move || {
                let name = format!("w{i}");
                host.apply(
                    &name,
                    &hello(&name, &format!("{name}.localhost"), &name),
                    201,
                );
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    for i in 0..20 {
        assert_eq!(
            host.get(&format!("w{i}.localhost"), "/").body,
            format!("w{i}\n")
        );
    }
    assert_eq!(host.workloads().as_array().unwrap().len(), 20);

    // Ten at once on one name are taken one at a time: one creates, nine configure, and
    // every one of them is a generation of its own.
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let host = Arc::clone(&host);
            std::thread::spawn(move || {
                let r = host.admin_send(
                    "PUT",
                    "/v1/workloads/same",
                    hello("same", "same.localhost", &format!("g{i}")).as_bytes(),
                );
                json(&r)["result"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let results: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| *r == "created").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| *r == "configured").count(),
        9,
        "{results:?}"
    );
    let status = json(&host.admin_send("GET", "/v1/workloads/same", b""));
    assert_eq!(status["generation"], 10, "{status}");
}

#[test]
fn the_admin_api_is_a_door_with_a_lock() {
    let host = Hearth::with_token(TOKEN, &[]);
    let put = |auth: Option<&str>| {
        let headers: Vec<(String, String)> = auth
            .map(|a| vec![("Authorization".to_string(), a.to_string())])
            .unwrap_or_default();
        let body = hello("door", "door.localhost", "hi");
        crate::support::send_with(
            host.admin,
            "PUT",
            "admin",
            "/v1/workloads/door",
            &headers,
            body.as_bytes(),
        )
    };
    assert_eq!(put(None).status, 401);
    assert_eq!(put(Some("Bearer wrong-token")).status, 401);
    assert_eq!(put(Some(&format!("Basic {TOKEN}"))).status, 401);
    assert_eq!(
        crate::support::request(host.admin, "admin", "/v1/workloads").status,
        401
    );
    assert_eq!(
        crate::support::request(host.admin, "admin", "/healthz").status,
        200,
        "health needs no token"
    );
    let refused = host.wait_for_log(
        &["admin request refused", "127.0.0.1"],
        Duration::from_secs(5),
    );
    assert!(
        !refused.contains("wrong-token") && !refused.contains(TOKEN),
        "the token is never logged: {refused}"
    );
    assert_eq!(put(Some(&format!("Bearer {TOKEN}"))).status, 201);

    // Bodies are bounded: 20 MiB is refused with 413 (the host may close before it is sent).
    let mut conn = TcpStream::connect(host.admin).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let size = 20 << 20;
    let head = format!(
        "PUT /v1/workloads/big HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {size}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'#'; 1 << 20];
    for _ in 0..20 {
        if conn.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[test]
fn a_public_admin_address_without_a_token_is_refused() {
    let (code, _, err) = hearth_cmd(&["run", "--http", "127.0.0.1:0", "--admin", "0.0.0.0:0"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refusing to serve the admin API on 0.0.0.0:0 without a token")
            && err.contains("--admin-token-file")
            && err.contains("HEARTH_ADMIN_TOKEN"),
        "{err}"
    );
}

#[test]
fn a_kept_cron_service_calls_the_new_job() {
    let host = Hearth::with_token(TOKEN, &[]);
    let cron = |version: &str| {
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: cron\nspec:\n  components:\n    - name: job\n      image: {}\n      env: {{ VERSION: \"{version}\" }}\n  service:\n    image: {}\n",
            wasm("cron_component"),
            wasm("cron_service")
        )
    };
    host.apply("cron", &cron("job-v1"), 201);
    host.wait_for_log(&["cron tick job-v1"], Duration::from_secs(10));
    host.apply("cron", &cron("job-v2"), 200);
    host.wait_for_log(&["cron tick job-v2"], Duration::from_secs(10));
    let status = json(&host.admin_send("GET", "/v1/workloads/cron", b""));
    assert_eq!(
        (
            status["service"]["state"].as_str(),
            status["service"]["restarts"].as_u64()
        ),
        (Some("running"), Some(0)),
        "{status}"
    );
}

#[test]
fn a_pool_that_cannot_be_reserved_is_a_clear_error() {
    let (code, _, err) = hearth_cmd(&[
        "run",
        "--http",
        "127.0.0.1:0",
        "--max-instances",
        "100000000",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot reserve the instance pool for --max-instances 100000000")
            && err.contains("lower --max-instances"),
        "{err}"
    );
}

#[test]
fn a_host_of_a_thousand_service_workloads_still_serves() {
    let host = Arc::new(Hearth::with_token(TOKEN, &[]));
    let echo = |name: &str| {
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  service:\n    image: {}\n",
            wasm("echo")
        )
    };
    // Four clients applying at once, 250 each.
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let host = Arc::clone(&host);
            std::thread::spawn(move || {
                for i in (t * 250)..(t * 250 + 250) {
                    let name = format!("svc{i}");
                    host.apply(&name, &echo(&name), 201);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    eprintln!("1,000 service workloads applied in {:?}", started.elapsed());
    host.apply(
        "front",
        &hello("front", "front.localhost", "still here"),
        201,
    );
    assert_eq!(host.get("front.localhost", "/").body, "still here\n");
    wait_until(Duration::from_secs(60), "every service running", || {
        let all = host.workloads();
        let running = all.as_array().unwrap().iter();
        running
            .filter(|w| w["service"]["state"] == "running")
            .count()
            == 1000
    });
    assert_eq!(host.get("front.localhost", "/").body, "still here\n");
}

#[test]
fn hearth_apply_get_and_delete_drive_a_running_host() {
    let host = Hearth::with_token(TOKEN, &[]);
    let dir = TempDir::new("apply-cli");
    // A relative image path: `hearth apply` resolves it against the manifest's directory.
    std::fs::copy(wasm("hello"), dir.0.join("hello.wasm")).unwrap();
    let doc = |name: &str, greeting: &str| {
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: web\n      image: hello.wasm\n      http: {{ host: {name}.localhost }}\n      env: {{ GREETING: {greeting} }}\n"
        )
    };
    let manifest = dir.write(
        "app.yaml",
        format!("{}---\n{}", doc("one", "first"), doc("two", "second")),
    );
    let token = dir.write("token", TOKEN);
    let admin = host.admin.to_string();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&[
            "--admin",
            &admin,
            "--admin-token-file",
            token.to_str().unwrap(),
        ]);
        hearth_cmd(&all)
    };
    let m = manifest.to_str().unwrap();
    let (code, out, err) = cli(&["apply", "-f", m]);
    assert_eq!(
        (code, out.as_str()),
        (0, "workload/one created\nworkload/two created\n"),
        "{err}"
    );
    assert_eq!(host.get("two.localhost", "/").body, "second\n");
    let (code, out, _) = cli(&["apply", "-f", m]);
    assert_eq!(
        (code, out.as_str()),
        (0, "workload/one unchanged\nworkload/two unchanged\n")
    );
    std::fs::write(
        &manifest,
        format!("{}---\n{}", doc("one", "first"), doc("two", "changed")),
    )
    .unwrap();
    let (code, out, _) = cli(&["apply", "-f", m]);
    assert_eq!(
        (code, out.as_str()),
        (0, "workload/one unchanged\nworkload/two configured\n")
    );
    assert_eq!(host.get("two.localhost", "/").body, "changed\n");

    let (code, out, err) = cli(&["get", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);
    let (code, out, _) = cli(&["get", "two"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("NAME")
            && out.contains("two.localhost/")
            && out.lines().nth(1).unwrap().ends_with('2'),
        "{out}"
    );

    let (code, out, _) = cli(&["delete", "one"]);
    assert_eq!((code, out.as_str()), (0, "workload/one deleted\n"));
    let (code, _, err) = cli(&["get", "one"]);
    assert_eq!(code, 1);
    assert!(err.contains("workload/one not found"), "{err}");

    // Without the token the host says no, and the CLI says how to fix it.
    let (code, _, err) = hearth_cmd(&["get", "--admin", &admin]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused the request (401)") && err.contains("--admin-token-file"),
        "{err}"
    );
}
