//! Stateful in-memory key-value store, run as a hearth *service*.
//!
//! Listens on `127.0.0.1:$CACHE_PORT` (default 6380) and speaks a line
//! protocol: every newline-terminated command gets exactly one reply line.
//!
//! | command           | reply                                        |
//! |-------------------|----------------------------------------------|
//! | `PING`            | `PONG`                                       |
//! | `SET key value`   | `OK` (value is the rest of the line)         |
//! | `GET key`         | `VALUE <v>` or `NIL`                         |
//! | `INCR key`        | `INT <n>` (missing key counts as 0)          |
//! | `DEL key`         | `INT 1` if it existed, else `INT 0`          |
//! | `KEYS`            | `INT <number of keys>`                       |
//! | anything else     | `ERR unknown command`                        |
//!
//! The store lives as long as this incarnation of the service; every
//! connection (there may be many at once) sees the same map.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};
use wstd::time::Duration;

const DEFAULT_PORT: u16 = 6380;
/// A command line longer than this is refused and the connection closed.
const MAX_LINE: usize = 64 * 1024;

type Store = Rc<RefCell<HashMap<String, String>>>;

#[wstd::main]
async fn main() -> io::Result<()> {
    let port = port_from_env("CACHE_PORT", DEFAULT_PORT)?;
    let listener = TcpListener::bind(&format!("127.0.0.1:{port}")).await?;
    println!("cache listening on 127.0.0.1:{port}");

    let store: Store = Rc::default();
    let mut incoming = listener.incoming();
    while let Some(accepted) = incoming.next().await {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("cache: accept failed: {e}");
                // Don't spin if accepting keeps failing.
                wstd::task::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let store = store.clone();
        wstd::runtime::spawn(async move {
            if let Err(e) = serve_connection(&stream, &store).await {
                eprintln!("cache: connection error: {e}");
            }
        })
        .detach();
    }
    Ok(())
}

fn port_from_env(name: &str, default: u16) -> io::Result<u16> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| {
            io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name}={v:?} is not a port"),
            )
        }),
        Err(_) => Ok(default),
    }
}

async fn serve_connection(stream: &TcpStream, store: &Store) -> io::Result<()> {
    let mut reader = stream;
    let mut writer = stream;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete line already buffered.
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let reply = execute(&decode_line(&line[..end]), store);
            writer.write_all(format!("{reply}\n").as_bytes()).await?;
        }
        writer.flush().await?;

        if pending.len() > MAX_LINE {
            writer.write_all(b"ERR line too long\n").await?;
            writer.flush().await?;
            return Ok(());
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            // EOF: treat an unterminated trailing command as a last line.
            if !pending.is_empty() {
                let reply = execute(&decode_line(&pending), store);
                writer.write_all(format!("{reply}\n").as_bytes()).await?;
                writer.flush().await?;
            }
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs one command against the store and returns the reply line.
fn execute(line: &str, store: &Store) -> String {
    let (cmd, args) = match line.split_once(' ') {
        Some((cmd, args)) => (cmd, args),
        None => (line, ""),
    };
    let mut map = store.borrow_mut();
    match (cmd.to_ascii_uppercase().as_str(), args) {
        ("PING", "") => "PONG".into(),
        ("SET", args) if !args.is_empty() => {
            let (key, value) = args.split_once(' ').unwrap_or((args, ""));
            map.insert(key.to_owned(), value.to_owned());
            "OK".into()
        }
        ("GET", key) if is_key(key) => match map.get(key) {
            Some(v) => format!("VALUE {v}"),
            None => "NIL".into(),
        },
        ("INCR", key) if is_key(key) => {
            let current = match map.get(key) {
                None => 0,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => return "ERR not an integer".into(),
                },
            };
            let Some(next) = current.checked_add(1) else {
                return "ERR overflow".into();
            };
            map.insert(key.to_owned(), next.to_string());
            format!("INT {next}")
        }
        ("DEL", key) if is_key(key) => format!("INT {}", u8::from(map.remove(key).is_some())),
        ("KEYS", "") => format!("INT {}", map.len()),
        _ => "ERR unknown command".into(),
    }
}

/// A key is a single non-empty word.
fn is_key(s: &str) -> bool {
    !s.is_empty() && !s.contains(' ')
}
