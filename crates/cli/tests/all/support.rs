//! Test support: guest builds, temporary manifests, a real `hearth` process, and a small
//! HTTP/1.1 client that reports exactly what came over the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the guest workspace once per test process and returns its output folder.
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root().join("guests");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet"])
            .current_dir(&root)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run cargo for the guests");
        assert!(status.success(), "building guests failed; is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)");
        root.join("target/wasm32-wasip2/release")
    })
}

/// The path of a built guest, e.g. `wasm("hello")`.
pub fn wasm(name: &str) -> String {
    guests().join(format!("{name}.wasm")).display().to_string()
}

/// A temporary directory for manifests, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hearth-test-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `Workload` manifest with the given component list (YAML, indented as list items).
pub fn workload(name: &str, components: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  components:\n{components}"
    )
}

/// The compiled-component cache shared by every test, so each guest compiles once.
fn cache_dir() -> PathBuf {
    repo_root().join("target/hearth-test-cache")
}

/// A running `hearth run` process.
pub struct Hearth {
    child: Child,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// The admin API's bearer token, when the host was started with one.
    pub token: Option<String>,
    /// Keeps the token file alive.
    _dir: Option<TempDir>,
}

impl Hearth {
    /// Starts `hearth run` on ephemeral ports and waits until it serves.
    pub fn start(manifests: &[&Path]) -> Self {
        Self::start_with(manifests, &[])
    }

    pub fn start_with(manifests: &[&Path], extra: &[&str]) -> Self {
        Self::start_env(manifests, extra, &[])
    }

    /// Like [`Hearth::start_with`], with extra environment variables for the host process.
    pub fn start_env(manifests: &[&Path], extra: &[&str], env: &[(&str, &str)]) -> Self {
        guests();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .envs(env.iter().copied())
            .args([
                "run",
                "--http",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(extra)
            .args(manifests)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let msg = v["message"].as_str().unwrap_or_default();
                    if msg == "HTTP ingress listening" || msg == "admin API listening" {
                        let _ = tx.send((
                            msg.to_string(),
                            v["addr"].as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut http, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while http.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((msg, addr)) if msg == "HTTP ingress listening" => {
                    http = Some(addr.parse().unwrap())
                }
                Ok((_, addr)) => admin = Some(addr.parse().unwrap()),
                Err(_) => {
                    let status = child.try_wait().unwrap();
                    panic!(
                        "hearth did not start (exit: {status:?}); logs:\n{}",
                        logs.lock().unwrap().join("\n")
                    );
                }
            }
        }
        Self {
            child,
            http: http.unwrap(),
            admin: admin.unwrap(),
            logs,
            token: None,
            _dir: None,
        }
    }

    /// An empty host (no manifests) whose admin API needs `token`, started with `extra`.
    pub fn with_token(token: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new("token");
        let file = dir.write("admin.token", format!("{token}\n"));
        let mut args = vec!["--admin-token-file", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut host = Self::start_with(&[], &args);
        host.token = Some(token.to_string());
        host._dir = Some(dir);
        host
    }

    /// `method path` on the admin API with `body`, carrying the host's token if it has one.
    pub fn admin_send(&self, method: &str, path: &str, body: &[u8]) -> RawResponse {
        let auth = self
            .token
            .as_ref()
            .map(|t| ("Authorization".to_string(), format!("Bearer {t}")));
        send_with(self.admin, method, "admin", path, auth.as_slice(), body)
    }

    /// `PUT /v1/workloads/NAME` with a manifest document; asserts the answer's status.
    pub fn apply(&self, name: &str, manifest: &str, status: u16) -> RawResponse {
        let r = self.admin_send("PUT", &format!("/v1/workloads/{name}"), manifest.as_bytes());
        assert_eq!(r.status, status, "PUT {name}: {}", r.text());
        r
    }

    /// `GET path` with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> Response {
        request(self.http, host, path)
    }

    /// `GET path` on the admin API.
    pub fn admin_get(&self, path: &str) -> Response {
        request(self.admin, "admin", path)
    }

    /// `GET /v1/workloads` on the admin API, parsed.
    pub fn workloads(&self) -> serde_json::Value {
        let resp = self.admin_send("GET", "/v1/workloads", b"");
        assert_eq!(resp.status, 200, "{}", resp.text());
        serde_json::from_slice(&resp.body).unwrap()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits up to `within` for a log line containing every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self
                .logs()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}; logs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hearth did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` over a fresh connection (`Connection: close`), read to the end.
pub fn request(addr: SocketAddr, host: &str, path: &str) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// `hearth ARGS` running on, its stdout read line by line on a thread: each line with the
/// moment it arrived. Kill the child when done.
pub fn follow_lines(args: &[&str]) -> (Child, std::sync::mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Runs `hearth ARGS` to completion, returning (exit code, stdout, stderr).
pub fn hearth_cmd(args: &[&str]) -> (i32, String, String) {
    guests();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `hearth run` on `manifest`, expecting it to fail at deploy; returns its stderr.
pub fn run_expecting_failure(manifest: &Path) -> String {
    run_expecting_failure_with(manifest, &["--http", "127.0.0.1:0"], &[])
}

/// Like [`run_expecting_failure`], with extra `hearth run` arguments and environment.
pub fn run_expecting_failure_with(
    manifest: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> String {
    guests();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["run", "--admin", "127.0.0.1:0"])
        .args(args)
        .arg("--cache-dir")
        .arg(cache_dir())
        .arg(manifest)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hearth run did not fail within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "expected exit 1; stderr:\n{err}");
    err
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A response whose body is kept as bytes (for binary bodies).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Hearth {
    /// `method path` with `body` (sent with a `Content-Length`), the answer kept as bytes.
    pub fn send(&self, method: &str, host: &str, path: &str, body: &[u8]) -> RawResponse {
        send(self.http, method, host, path, body)
    }
}

/// One request with a body over a fresh connection (`Connection: close`), read to the end.
pub fn send(addr: SocketAddr, method: &str, host: &str, path: &str, body: &[u8]) -> RawResponse {
    send_with(addr, method, host, path, &[], body)
}

/// [`send`] with extra request headers.
pub fn send_with(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed response: {:?}", String::from_utf8_lossy(&raw)));
    let head = parse_response(&raw[..split + 4]);
    let rest = &raw[split + 4..];
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    RawResponse {
        status: head.status,
        headers: head.headers,
        body: if chunked {
            dechunk_bytes(rest)
        } else {
            rest.to_vec()
        },
    }
}

fn dechunk_bytes(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&s[..eol]).unwrap_or("0");
        let n =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&s[eol + 2..eol + 2 + n]);
        s = &s[eol + 2 + n + 2..];
    }
    out
}

/// Runs `openssl` in `dir` with the words of `command`; panics with its stderr on failure.
fn openssl(dir: &Path, command: &str) {
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "openssl {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const P256: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/// A test certificate authority in `dir`: `ca.pem` and `ca.key`. Returns `ca.pem`.
pub fn test_ca(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &format!("req -x509 {P256} -keyout ca.key -out ca.pem -days 2 -subj /CN=hearth-test-CA"),
    );
    dir.join("ca.pem")
}

/// A certificate signed by `dir`'s test CA, common name `cn`, for `sans` (openssl's
/// `subjectAltName` syntax, e.g. `DNS:localhost,IP:127.0.0.1`): writes `STEM.pem` and
/// `STEM.key` and returns their paths.
pub fn signed_cert(dir: &Path, stem: &str, cn: &str, sans: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &format!("req {P256} -keyout {stem}.key -out {stem}.csr -subj /CN={cn}"),
    );
    std::fs::write(
        dir.join(format!("{stem}.ext")),
        format!("subjectAltName={sans}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &format!(
            "x509 -req -in {stem}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {stem}.pem -days 2 -extfile {stem}.ext"
        ),
    );
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}
