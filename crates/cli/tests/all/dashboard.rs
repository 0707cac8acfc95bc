//! The dashboard at `/ui`, in a real browser: headless Chromium (Debian's `chromium`), driven
//! through `chromedriver`'s WebDriver HTTP API on loopback. The test signs in through the
//! form (a wrong token first), waits for the page to show the workloads, their topology, a
//! request rate that moves while requests flow, a crashing service's restarts and a guest's
//! log line, and saves a screenshot to `<target>/artifacts/dashboard.png` for people to look at.

use crate::support::{Hearth, TempDir, free_port, send_with, wasm};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "dash-token-0123456789";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session; both end on drop.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends Chromium; then the driver goes.
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not installed: run scripts/setup (it installs Debian's chromium and chromium-driver)"
    );
}

impl Browser {
    fn start() -> Self {
        require("chromium");
        require("chromedriver");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let profile = TempDir::new("chromium-profile");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        wait_until(
            "chromedriver answers /status",
            Duration::from_secs(20),
            || {
                TcpStream::connect(addr).ok()?;
                let status = browser.call("GET", "/status", None);
                status["value"]["ready"].as_bool().filter(|r| *r)
            },
        );
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1440,900",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", browser._profile.0.display()),
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; the answer's JSON. chromedriver keeps connections open
    /// whatever the request says, so the body is read by its `Content-Length`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut raw = vec![0; length];
        reader.read_exact(&mut raw).unwrap();
        serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&raw)))
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.call(method, &format!("/session/{}{path}", self.session), body);
        assert!(
            answer["value"]["error"].is_null(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {found}\npage: {}", self.text()))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Runs `script` (a function body) in the page; its return value.
    fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn text(&self) -> String {
        self.eval("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.session_call("GET", "/screenshot", None);
        base64_decode(b64.as_str().unwrap())
    }
}

fn chromium_binary() -> String {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or(&"chromium")
        .to_string()
}

/// Polls `probe` every 200 ms until it gives a value, for at most `within`.
fn wait_until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut probe))
            .ok()
            .flatten()
        {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let digits: Vec<u32> = chunk
            .iter()
            .filter(|c| **c != b'=')
            .map(|c| value(*c))
            .collect();
        let n = digits.iter().fold(0u32, |acc, d| (acc << 6) | d) << (6 * (4 - digits.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..digits.len()]);
    }
    out
}

/// Where test artifacts go: `<target>/artifacts`, beside the binaries.
fn artifacts() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hearth"));
    let target = exe
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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
