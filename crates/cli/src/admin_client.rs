//! The one client of a host's admin API (`hearth run --admin`), shared by `hearth status`,
//! `apply`, `delete` and `get`: the `--admin` / `--admin-token-file` flags, loading the bearer
//! token, and a small blocking HTTP/1.1 exchange over loopback (one request per connection).
//!
//! It owns transport and authentication only: what a status code means for a command (created,
//! not found, ...) is decided by the command. The token is never printed, not even by `Debug`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable holding the admin token itself (a `--admin-token-file` wins).
pub const TOKEN_ENV: &str = "HEARTH_ADMIN_TOKEN";

/// How long a query (`GET`) may take to answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change may take: a deploy compiles the component before answering, and a delete
/// waits for the workload's requests and service to stop.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long connecting may take; the admin API is normally on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The flags every command that talks to a running host takes.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The host's admin API address (`hearth run --admin`).
    #[arg(long, default_value = "127.0.0.1:9090", env = "HEARTH_ADMIN")]
    pub admin: SocketAddr,
    /// A file holding the admin API's bearer token (surrounding whitespace is ignored); without
    /// it, the token is read from $HEARTH_ADMIN_TOKEN when set.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminArgs {
    /// A client for the host these flags name, with the token from the file or the environment.
    pub fn client(&self) -> Result<AdminClient, TokenError> {
        let env = match std::env::var_os(TOKEN_ENV) {
            None => None,
            Some(v) => Some(v.into_string().map_err(|_| TokenError::NotUnicode {
                from: TOKEN_ENV.to_string(),
            })?),
        };
        let token = load_token(self.admin_token_file.as_deref(), env.as_deref())?;
        Ok(AdminClient {
            addr: self.admin,
            token,
        })
    }
}

impl AdminArgs {
    /// [`AdminArgs::client`] for a command: a token that cannot be loaded is printed and is
    /// the usage exit code.
    pub fn client_or_usage_error(&self) -> Result<AdminClient, std::process::ExitCode> {
        self.client().map_err(|e| {
            eprintln!("error: {e}");
            std::process::ExitCode::from(crate::EXIT_INVALID)
        })
    }
}

/// The lifecycle API's path of one workload, `/v1/workloads/{name}`. The name goes into the
/// path as it is, so it must be what a manifest allows (a DNS label); `Err` says what was
/// expected.
pub fn workload_path(name: &str) -> Result<String, String> {
    hearth_manifest::dns_label(name).map_err(|why| format!("workload name: {why}"))?;
    Ok(format!("/v1/workloads/{name}"))
}

/// A bearer token. `Debug` hides it so that it cannot end up in a log line or a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself, for the host that checks it.
    pub fn into_secret(self) -> String {
        self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// Why the token could not be loaded. Messages name where it came from, never its value.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{}: cannot read the admin token file: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{from}: the admin token is empty")]
    Empty { from: String },
    #[error(
        "{from}: the admin token has a character that cannot go in an HTTP header: expected visible ASCII only (no spaces, line breaks or other characters)"
    )]
    BadCharacter { from: String },
    #[error("{from}: the admin token is not UTF-8")]
    NotUnicode { from: String },
}

/// The token from `file` (its contents, trimmed) when given, else from `env` (the value of
/// [`TOKEN_ENV`], trimmed; empty counts as unset), else none.
pub fn load_token(file: Option<&Path>, env: Option<&str>) -> Result<Option<Token>, TokenError> {
    if let Some(file) = file {
        let from = file.display().to_string();
        let bytes = std::fs::read(file).map_err(|source| TokenError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let text =
            String::from_utf8(bytes).map_err(|_| TokenError::NotUnicode { from: from.clone() })?;
        return checked(text.trim(), from).map(Some);
    }
    match env.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => checked(value, TOKEN_ENV.to_string()).map(Some),
    }
}

fn checked(value: &str, from: String) -> Result<Token, TokenError> {
    if value.is_empty() {
        return Err(TokenError::Empty { from });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::BadCharacter { from });
    }
    Ok(Token(value.to_string()))
}

/// Why an exchange with the admin API failed as a whole (not a status a command handles).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot reach the admin API at {addr}: {source}\n(start a host with its admin API: `hearth run --admin {addr} MANIFEST...`)"
    )]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the exchange with the admin API at {addr} failed: {source}")]
    Exchange {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the admin API at {addr} answered something that is not HTTP: {why}")]
    Malformed { addr: SocketAddr, why: String },
    #[error(
        "the admin API at {addr} refused the request (401): set the token with --admin-token-file PATH or {TOKEN_ENV}"
    )]
    Unauthorized { addr: SocketAddr },
}

/// An answer of the admin API other than `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// What to tell a user about an answer the command did not expect: the server's text, or
    /// the status line when it sent none.
    pub fn error_text(&self) -> String {
        let text = self.text();
        let text = text.trim();
        if text.is_empty() {
            format!("{} {}", self.status, self.reason)
        } else {
            text.to_string()
        }
    }
}

/// A request body and its media type.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// A client of one host's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    token: Option<Token>,
}

impl AdminClient {
    /// The address this client talks to, for messages.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Response, AdminError> {
        self.exchange("GET", path, &[], None, QUERY_TIMEOUT)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Response, AdminError> {
        self.exchange("DELETE", path, &[], None, CHANGE_TIMEOUT)
    }

    /// `PUT path` with `body` and extra headers.
    pub fn put(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response, AdminError> {
        self.exchange("PUT", path, headers, Some(body), CHANGE_TIMEOUT)
    }

    /// `GET path`, answered by a stream of lines (chunked): `on_line` gets each line as it
    /// arrives until the server ends the stream or `on_line` returns `false`. An answer other
    /// than `200` is returned whole instead.
    pub fn stream_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<Option<Response>, AdminError> {
        use std::io::BufRead;
        let addr = self.addr;
        let io = |source| AdminError::Exchange { addr, source };
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|source| AdminError::Unreachable { addr, source })?;
        stream
            .write_all(&self.request("GET", path, &[], None))
            .map_err(io)?;
        let mut reader = std::io::BufReader::new(stream);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if reader.read_until(b'\n', &mut head).map_err(io)? == 0 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let (status, _) = parse_status_line(text.lines().next().unwrap_or_default())
            .map_err(|why| AdminError::Malformed { addr, why })?;
        if status == 401 {
            return Err(AdminError::Unauthorized { addr });
        }
        if status != 200 {
            let mut raw = head;
            reader.read_to_end(&mut raw).map_err(io)?;
            return parse_response(&raw)
                .map(Some)
                .map_err(|why| AdminError::Malformed { addr, why });
        }
        // Chunks, re-split into lines: a line may span chunks.
        let mut pending = Vec::new();
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).map_err(io)? == 0 {
                return Ok(None);
            }
            let n = usize::from_str_radix(size.trim(), 16).map_err(|_| AdminError::Malformed {
                addr,
                why: format!("bad chunk size `{}`", size.trim()),
            })?;
            if n == 0 {
                return Ok(None);
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(io)?;
            pending.extend_from_slice(&chunk[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if !on_line(String::from_utf8_lossy(&line).trim_end()) {
                    return Ok(None);
                }
            }
        }
    }

    /// One request on a fresh connection; a `401` becomes [`AdminError::Unauthorized`].
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body<'_>>,
        timeout: Duration,
    ) -> Result<Response, AdminError> {
        let addr = self.addr;
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|source| AdminError::Unreachable { addr, source })?;
        let request = self.request(method, path, headers, body);
        let raw = send(&mut stream, &request, timeout)
            .map_err(|source| AdminError::Exchange { addr, source })?;
        let response = parse_response(&raw).map_err(|why| AdminError::Malformed { addr, why })?;
        if response.status == 401 {
            return Err(AdminError::Unauthorized { addr });
        }
        Ok(response)
    }

    /// The request's bytes: head, then body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth/{}\r\nAccept: application/json, text/plain\r\nConnection: close\r\n",
            self.addr,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(Token(token)) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                body.content_type,
                body.bytes.len()
            ));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if let Some(body) = body {
            out.extend_from_slice(body.bytes);
        }
        out
    }
}

/// Writes `request` and reads the whole answer (the server closes after it).
fn send(stream: &mut TcpStream, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// Splits a raw HTTP/1.1 answer into status, reason and (de-chunked) body.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("the answer ended before its headers did")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, reason) = parse_status_line(status_line)?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length `{value}` is not a number"))?,
            );
        }
    }
    let body = match (chunked, length) {
        (true, _) => dechunk(rest)?,
        (false, Some(n)) => rest
            .get(..n)
            .ok_or("the body is shorter than its Content-Length")?
            .to_vec(),
        (false, None) => rest.to_vec(),
    };
    Ok(Response {
        status,
        reason,
        body,
    })
}

/// `HTTP/1.1 201 Created` → `(201, "Created")`.
fn parse_status_line(line: &str) -> Result<(u16, String), String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("the status line is `{line}`"));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| format!("the status line is `{line}`"))?;
    Ok((status, parts.next().unwrap_or_default().to_string()))
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers are ignored).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("a chunk size line is cut short")?;
        let size_line = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("the chunk size `{size_hex}` is not hexadecimal"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("a chunk is cut short")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("a chunk is cut short")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Reads one request (head and `Content-Length` body) the way a server would.
    fn read_request(stream: &mut TcpStream) -> (String, Vec<u8>) {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed before finishing its head");
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                break end;
            }
        };
        let head = String::from_utf8(raw[..end].to_vec()).unwrap();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |n| n.parse::<usize>().unwrap());
        let mut body = raw[end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed before finishing its body");
            body.extend_from_slice(&buf[..n]);
        }
        (head, body)
    }

    /// Serves one connection in the test thread while `call` runs on another; returns the
    /// request the server saw and what the client made of the answer.
    fn serve_once<T: Send + 'static>(
        token: Option<&str>,
        answer: String,
        call: impl FnOnce(AdminClient) -> T + Send + 'static,
    ) -> (String, Vec<u8>, T) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = AdminClient {
            addr: listener.local_addr().unwrap(),
            token: token.map(|t| Token(t.to_string())),
        };
        let caller = std::thread::spawn(move || call(client));
        let (mut stream, _) = listener.accept().unwrap();
        let (head, body) = read_request(&mut stream);
        stream.write_all(answer.as_bytes()).unwrap();
        drop(stream);
        (head, body, caller.join().unwrap())
    }

    #[test]
    fn put_sends_the_token_the_headers_and_the_body_and_reads_201() {
        let json = r#"{"name":"web","result":"created"}"#;
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        let (head, body, got) = serve_once(Some("s3cret"), answer, |c| {
            c.put(
                "/v1/workloads/web",
                &[("X-Hearth-Source", "app.yaml#2")],
                Body {
                    content_type: "application/json",
                    bytes: b"{\"kind\":\"Workload\"}",
                },
            )
        });
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "PUT /v1/workloads/web HTTP/1.1");
        assert!(lines.contains(&"Authorization: Bearer s3cret"), "{head}");
        assert!(lines.contains(&"X-Hearth-Source: app.yaml#2"), "{head}");
        assert!(lines.contains(&"Content-Type: application/json"), "{head}");
        assert!(lines.contains(&"Content-Length: 19"), "{head}");
        assert_eq!(body, b"{\"kind\":\"Workload\"}");
        let got = got.unwrap();
        assert_eq!(got.status, 201);
        assert_eq!(
            got.json().unwrap(),
            serde_json::json!({"name": "web", "result": "created"})
        );
    }

    #[test]
    fn a_401_names_the_address_and_how_to_set_the_token_but_not_the_token() {
        let answer =
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nbad token\r\n\r\n".to_string();
        let (head, _, got) = serve_once(Some("wrong"), answer, |c| {
            let addr = c.addr();
            (addr, c.get("/v1/workloads"))
        });
        assert!(head.starts_with("GET /v1/workloads HTTP/1.1\r\n"), "{head}");
        assert!(
            head.lines().any(|l| l == "Authorization: Bearer wrong"),
            "{head}"
        );
        let (addr, got) = got;
        let message = got.unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "the admin API at {addr} refused the request (401): set the token with --admin-token-file PATH or HEARTH_ADMIN_TOKEN"
            )
        );
        assert!(!message.contains("wrong"));
    }

    #[test]
    fn no_token_sends_no_authorization_and_a_404_is_an_answer() {
        let answer = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nno such w\r\n8\r\norkload\n\r\n0\r\n\r\n".to_string();
        let (head, body, got) = serve_once(None, answer, |c| c.delete("/v1/workloads/gone"));
        assert!(
            head.starts_with("DELETE /v1/workloads/gone HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(!head.contains("Authorization"), "{head}");
        assert!(body.is_empty());
        let got = got.unwrap();
        assert_eq!((got.status, got.reason.as_str()), (404, "Not Found"));
        assert_eq!(got.error_text(), "no such workload");
    }

    #[test]
    fn a_closed_port_says_how_to_start_a_host() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = AdminClient { addr, token: None };
        let message = client.get("/v1/workloads").unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot reach the admin API at {addr}: ")),
            "{message}"
        );
        assert!(
            message.contains(&format!("hearth run --admin {addr} MANIFEST...")),
            "{message}"
        );
    }

    #[test]
    fn an_answer_that_is_not_http_is_named() {
        let e = parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert_eq!(e, "the status line is `SSH-2.0-OpenSSH`");
        let e = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").unwrap_err();
        assert_eq!(e, "the body is shorter than its Content-Length");
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn the_token_file_is_trimmed_and_wins_over_the_environment() {
        let file = temp_file("wins", "  from-file\n");
        let token = load_token(Some(&file), Some("from-env")).unwrap();
        assert_eq!(token, Some(Token("from-file".into())));
    }

    #[test]
    fn the_environment_is_used_without_a_file_and_empty_means_unset() {
        let token = load_token(None, Some(" from-env\n")).unwrap();
        assert_eq!(token, Some(Token("from-env".into())));
        assert_eq!(load_token(None, Some("")).unwrap(), None);
        assert_eq!(load_token(None, None).unwrap(), None);
    }

    #[test]
    fn token_errors_name_the_source_and_never_the_token() {
        let missing = Path::new("/nonexistent/hearth-token");
        let e = load_token(Some(missing), Some("fine"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/hearth-token: cannot read the admin token file: "),
            "{e}"
        );
        let empty = temp_file("empty", "\n\n");
        let e = load_token(Some(&empty), None).unwrap_err().to_string();
        assert_eq!(e, format!("{}: the admin token is empty", empty.display()));
        let spaced = temp_file("spaced", "two words\n");
        let e = load_token(Some(&spaced), None).unwrap_err().to_string();
        assert!(e.contains("cannot go in an HTTP header"), "{e}");
        assert!(!e.contains("two words"), "{e}");
        let e = load_token(None, Some("a\r\nX-Evil: 1"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("HEARTH_ADMIN_TOKEN: "), "{e}");
        assert!(!e.contains("Evil"), "{e}");
    }

    #[test]
    fn a_workload_path_takes_only_names_a_manifest_allows() {
        assert_eq!(workload_path("web-2").unwrap(), "/v1/workloads/web-2");
        let e = workload_path("Web/../x").unwrap_err();
        assert!(e.starts_with("workload name: expected a DNS label"), "{e}");
        assert!(e.ends_with("found `Web/../x`"), "{e}");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = AdminClient {
            addr: "127.0.0.1:9090".parse().unwrap(),
            token: Some(Token("s3cret".into())),
        };
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
