//! The dashboard at `/ui`, in a real browser ([`Browser`]: headless Chromium). The test signs in through the
//! form (a wrong token first), waits for the page to show the workloads, their topology, a
//! request rate that moves while requests flow, a crashing service's restarts and a guest's
//! log line, and saves a screenshot to `<target>/artifacts/dashboard.png` for people to look at.

use crate::browser::{Browser, artifacts, wait_until};
use crate::support::{Hearth, TempDir, send_with, wasm};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TOKEN: &str = "dash-token-0123456789";

fn manifests(dir: &TempDir) -> Vec<PathBuf> {
    let shop = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: shop\nspec:\n  hostInterfaces:\n    - {{ interface: wasi:keyvalue/store, backend: memory }}\n  components:\n    - name: hello\n      image: {hello}\n      http: {{ path: /hello }}\n    - name: faults\n      image: {faults}\n      http: {{ path: / }}\n    - name: greeter\n      image: {caller}\n      http: {{ path: /greet }}\n    - name: echo\n      image: {callee}\n    - name: cart\n      image: {kv}\n      http: {{ path: /cart }}\n",
        hello = wasm("hello"),
        faults = wasm("faults"),
        caller = wasm("types_caller"),
        callee = wasm("types_callee"),
        kv = wasm("kv_http"),
    );
    let flaky = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: flaky\nspec:\n  service:\n    image: {}\n    env: {{ MODE: trap, AFTER_MS: \"300\" }}\n    ports: [{{ port: 7171 }}]\n    restart: {{}}\n",
        wasm("crashy_service")
    );
    vec![dir.write("shop.yaml", shop), dir.write("flaky.yaml", flaky)]
}

#[test]
fn dashboard_shows_topology_live_numbers_and_logs_in_a_real_browser() {
    let dir = TempDir::new("dashboard");
    let token_file = dir.write("admin.token", format!("{TOKEN}\n"));
    let files = manifests(&dir);
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let host = Hearth::start_with(
        &paths,
        &["--admin-token-file", token_file.to_str().unwrap()],
    );
    for _ in 0..5 {
        assert_eq!(host.get("x", "/hello").status, 200);
    }
    assert_eq!(host.get("x", "/greet/dashboard").status, 200);
    assert_eq!(host.get("x", "/trap").status, 500);

    // The API side of the sign-in: a wrong token is 401, the right one a 303 with the cookie.
    let form = [(
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let wrong = send_with(
        host.admin,
        "POST",
        "admin",
        "/ui/login",
        &form,
        b"token=nope",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("not this host's admin token"));
    assert!(!wrong.text().contains("shop"), "no data before signing in");
    let right = send_with(
        host.admin,
        "POST",
        "admin",
        "/ui/login",
        &form,
        format!("token={TOKEN}").as_bytes(),
    );
    assert_eq!(right.status, 303);
    let cookie = right.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );
    let session = [(
        "Cookie".to_string(),
        cookie.split(';').next().unwrap().to_string(),
    )];
    let read = send_with(host.admin, "GET", "admin", "/v1/workloads", &session, b"");
    assert_eq!(read.status, 200, "the cookie reads");
    let delete = send_with(
        host.admin,
        "DELETE",
        "admin",
        "/v1/workloads/shop",
        &session,
        b"",
    );
    assert_eq!(delete.status, 401, "the cookie never writes");
    assert_eq!(
        host.admin_get("/v1/workloads").status,
        401,
        "no credential, no data"
    );

    // Requests keep flowing while the browser watches, so the rate moves.
    let flowing = Arc::new(AtomicBool::new(true));
    let traffic = {
        let flowing = Arc::clone(&flowing);
        let http = host.http;
        std::thread::spawn(move || {
            while flowing.load(Ordering::Relaxed) {
                crate::support::request(http, "x", "/hello");
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };

    let browser = Browser::start();
    let ui = format!("http://{}/ui", host.admin);
    browser.goto(&ui);
    assert!(browser.text().contains("Sign in"), "{}", browser.text());
    browser.type_into("#token", "wrong-token");
    browser.click("button[type=submit]");
    wait_until(
        "the wrong token is refused in the page",
        Duration::from_secs(10),
        || {
            browser
                .text()
                .contains("not this host's admin token")
                .then_some(())
        },
    );
    assert!(
        !browser.text().contains("hello"),
        "no data for a wrong token"
    );
    browser.type_into("#token", TOKEN);
    browser.click("button[type=submit]");

    // The workloads, their components and the topology.
    wait_until(
        "the page lists the workloads",
        Duration::from_secs(15),
        || {
            let names = browser
                .eval("return [...document.querySelectorAll('.wl')].map(w => w.dataset.workload);");
            (names == json!(["flaky", "shop"]) || names == json!(["shop", "flaky"])).then_some(())
        },
    );
    let text = browser.text();
    for needle in ["hello", "faults", "greeter", "cart", "/hello", "/greet"] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    let link = browser.eval(
        "return [...document.querySelectorAll('[data-workload=shop] [data-part=greeter] li.link')].map(li => li.innerText);",
    );
    assert!(
        link.to_string().contains("hearth:types/echo") && link.to_string().contains("echo"),
        "the greeter → echo link: {link}"
    );
    let backend = browser.eval(
        "return [...document.querySelectorAll('[data-workload=shop] [data-part=cart] li.host')].map(li => li.innerText).join(' ');",
    );
    assert!(
        backend.to_string().contains("wasi:keyvalue") && backend.to_string().contains("memory"),
        "the key-value backend: {backend}"
    );

    // Live numbers: hello's rate is above zero and its total grows; faults shows its error.
    let cell = |component: &str, col: &str| -> String {
        browser
            .eval(&format!(
                "const c = document.querySelector('[data-workload=shop] tr[data-component={component}] td[data-col={col}]'); return c ? c.innerText : '';"
            ))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = wait_until(
        "hello shows a non-zero rate",
        Duration::from_secs(15),
        || {
            let rate: f64 = cell("hello", "rate").replace(',', "").parse().ok()?;
            let total: u64 = cell("hello", "requests").replace(',', "").parse().ok()?;
            (rate > 0.0 && total > 5).then_some(total)
        },
    );
    wait_until(
        "hello's request count moves on",
        Duration::from_secs(10),
        || {
            let total: u64 = cell("hello", "requests").replace(',', "").parse().ok()?;
            (total > first).then_some(())
        },
    );
    // A trap while the page watches: faults' error ratio rises above zero.
    assert_eq!(host.get("x", "/trap").status, 500);
    wait_until(
        "faults shows an error ratio",
        Duration::from_secs(10),
        || {
            let ratio = cell("faults", "errors");
            (ratio.ends_with('%') && ratio != "0%").then_some(())
        },
    );

    // The crashing service: its restarts are counted on the page.
    wait_until("flaky's restarts show", Duration::from_secs(20), || {
        let restarts = browser.eval(
            "const s = document.querySelector('[data-service=flaky] .restarts'); return s ? s.innerText : '';",
        );
        let n: u32 = restarts.as_str()?.parse().ok()?;
        (n >= 1).then_some(())
    });

    // The log tail: select shop, make a guest print, see its line.
    browser.click("[data-workload=shop] .wl-head");
    assert_eq!(host.get("x", "/log").status, 200);
    wait_until(
        "the guest's line is in the log tail",
        Duration::from_secs(10),
        || {
            browser
                .eval("return document.getElementById('log-lines').innerText;")
                .as_str()?
                .contains("guest says hello on stdout")
                .then_some(())
        },
    );

    // Let the sparklines fill a little, then keep a picture for people.
    std::thread::sleep(Duration::from_secs(3));
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = artifacts().join("dashboard.png");
    std::fs::write(&path, png).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());

    flowing.store(false, Ordering::Relaxed);
    traffic.join().unwrap();
}

#[test]
fn dashboard_needs_no_sign_in_without_a_token() {
    let host = Hearth::start(&[]);
    let page = host.admin_get("/ui");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("/ui/app.js"),
        "the dashboard, not the login form"
    );
    let script = host.admin_get("/ui/app.js");
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}
