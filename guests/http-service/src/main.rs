//! A tiny HTTP/1.1 server run as a hearth *service*, written directly over
//! `wstd::net::TcpListener` (no HTTP library).
//!
//! Listens on `127.0.0.1:$HTTP_PORT` (default 8081). Every request gets
//! `200` and `service saw <METHOD> <PATH> (request #<n>)\n`, where `n`
//! counts the requests this incarnation has answered. Connections are kept
//! alive (HTTP/1.1 default) unless the client sends `Connection: close`;
//! every response carries `Content-Length`. Request bodies are skipped
//! using `Content-Length`; chunked request bodies are refused with `501`.

use std::cell::Cell;
use std::rc::Rc;

use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};
use wstd::time::Duration;

/// Largest accepted request head (request line + headers).
const MAX_HEAD: usize = 16 * 1024;

#[wstd::main]
async fn main() -> io::Result<()> {
    let port: u16 = match std::env::var("HTTP_PORT") {
        Ok(v) => v.trim().parse().map_err(|_| {
            io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("HTTP_PORT={v:?} is not a port"),
            )
        })?,
        Err(_) => 8081,
    };
    let listener = TcpListener::bind(&format!("127.0.0.1:{port}")).await?;
    println!("http service listening on {port}");

    let served = Rc::new(Cell::new(0u64));
    let mut incoming = listener.incoming();
    while let Some(accepted) = incoming.next().await {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("http service: accept failed: {e}");
                wstd::task::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let served = served.clone();
        wstd::runtime::spawn(async move {
            if let Err(e) = serve_connection(&stream, &served).await {
                eprintln!("http service: connection error: {e}");
            }
        })
        .detach();
    }
    Ok(())
}

struct Head {
    method: String,
    path: String,
    keep_alive: bool,
    content_length: usize,
    chunked: bool,
}

/// Serves requests on one connection until the client closes it, asks to
/// close it, or sends something we can't parse.
async fn serve_connection(stream: &TcpStream, served: &Cell<u64>) -> io::Result<()> {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    loop {
        let Some(raw) = conn.read_head().await? else {
            return Ok(()); // clean EOF between requests
        };
        let head = match parse_head(&raw) {
            Ok(head) => head,
            Err(reason) => {
                conn.respond("400 Bad Request", &format!("{reason}\n"), false, true)
                    .await?;
                return Ok(());
            }
        };
        if head.chunked {
            let body = "chunked request bodies are not supported\n";
            conn.respond("501 Not Implemented", body, false, true)
                .await?;
            return Ok(());
        }
        conn.skip(head.content_length).await?;

        let n = served.get() + 1;
        served.set(n);
        let body = format!("service saw {} {} (request #{n})\n", head.method, head.path);
        let head_only = head.method == "HEAD";
        conn.respond("200 OK", &body, head_only, !head.keep_alive)
            .await?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}

struct Conn<'a> {
    stream: &'a TcpStream,
    /// Bytes read but not consumed yet (pipelined requests stay here).
    buf: Vec<u8>,
}

impl Conn<'_> {
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let mut reader = self.stream;
        let n = reader.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads up to and including the blank line ending a request head.
    /// `None` means the peer closed the connection before sending anything.
    async fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = find_head_end(&self.buf) {
                return Ok(Some(self.buf.drain(..end).collect()));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "request head too large",
                ));
            }
            if self.fill().await? == 0 {
                if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a request head",
                ));
            }
        }
    }

    /// Discards `len` bytes of request body.
    async fn skip(&mut self, mut len: usize) -> io::Result<()> {
        loop {
            let take = len.min(self.buf.len());
            self.buf.drain(..take);
            len -= take;
            if len == 0 {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a request body",
                ));
            }
        }
    }

    async fn respond(
        &mut self,
        status: &str,
        body: &str,
        head_only: bool,
        close: bool,
    ) -> io::Result<()> {
        let connection = if close { "close" } else { "keep-alive" };
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
            body.len()
        );
        if !head_only {
            out.push_str(body);
        }
        let mut writer = self.stream;
        writer.write_all(out.as_bytes()).await?;
        writer.flush().await
    }
}

/// Index just past the `\r\n\r\n` (or bare `\n\n`) that ends the head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn parse_head(raw: &[u8]) -> Result<Head, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "request head is not UTF-8")?;
    // Tolerate empty lines before the request line (RFC 9112 §2.2).
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());

    let request_line = lines.next().ok_or("missing request line")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || path.is_empty() {
        return Err("malformed request line");
    }
    // HTTP/1.1 connections persist by default, HTTP/1.0 ones don't.
    let default_keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err("unsupported HTTP version"),
    };
    let (mut close, mut keep_alive) = (false, false);

    let mut content_length = 0;
    let mut chunked = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| "bad content-length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    Ok(Head {
        method: method.to_owned(),
        path: path.to_owned(),
        keep_alive: !close && (keep_alive || default_keep_alive),
        content_length,
        chunked,
    })
}
