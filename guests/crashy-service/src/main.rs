//! A service that ends on purpose, for testing service supervision.
//!
//! Listens on `127.0.0.1:$PORT` (default 7171). Every accepted connection
//! gets `hello\n` and is then held open (input is read and discarded), so a
//! client still connected when this incarnation dies sees EOF or a reset.
//!
//! `$AFTER_MS` milliseconds after start (default 300) it ends as `$MODE` says:
//!
//! | `MODE`      | ending                                                |
//! |-------------|-------------------------------------------------------|
//! | `trap`      | executes `unreachable` (the default)                  |
//! | `exit`      | `std::process::exit($EXIT_CODE)`, default code 3      |
//! | `exit-code` | `wasi:cli/exit.exit-with-code($EXIT_CODE)`, default 3 |
//! | `error`     | `main` returns `Err(..)`                              |
//! | `clean`     | `main` returns `Ok(())`                               |
//! | `forever`   | never ends                                            |
//! | `spin`      | computes forever without awaiting anything            |
//! | `oom`       | allocates 1 MiB blocks (touching each) until it fails |
//!
//! `std::process::exit` goes through wasi-libc, which calls WASI 0.2's
//! `wasi:cli/exit.exit(result)`: the host only learns "success" (code 0) or
//! "failure" (any other code, reported as 1). `exit-code` uses
//! `exit-with-code` (WASI 0.2.12) instead, so the host sees the exact code.

use std::cell::RefCell;
use std::rc::Rc;

use wstd::future::FutureExt;
use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};
use wstd::runtime::Task;
use wstd::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Trap,
    Exit(i32),
    ExitCode(u8),
    Error,
    Clean,
    Forever,
    Spin,
    Oom,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Trap => "trap",
            Mode::Exit(_) => "exit",
            Mode::ExitCode(_) => "exit-code",
            Mode::Error => "error",
            Mode::Clean => "clean",
            Mode::Forever => "forever",
            Mode::Spin => "spin",
            Mode::Oom => "oom",
        }
    }
}

/// Connection tasks, kept (not detached) so that they can be cancelled:
/// the wstd executor only returns from `main` once no task is left.
type Connections = Rc<RefCell<Vec<Task<()>>>>;

#[wstd::main]
async fn main() -> io::Result<()> {
    let port: u16 = env_number("PORT", 7171)?;
    let after_ms: u64 = env_number("AFTER_MS", 300)?;
    let mode = match std::env::var("MODE").as_deref() {
        Ok("trap") | Err(_) => Mode::Trap,
        Ok("exit") => Mode::Exit(env_number("EXIT_CODE", 3)?),
        Ok("exit-code") => Mode::ExitCode(env_number("EXIT_CODE", 3)?),
        Ok("error") => Mode::Error,
        Ok("clean") => Mode::Clean,
        Ok("forever") => Mode::Forever,
        Ok("spin") => Mode::Spin,
        Ok("oom") => Mode::Oom,
        Ok(other) => return Err(invalid(format!("unknown MODE {other:?}"))),
    };

    let listener = TcpListener::bind(&format!("127.0.0.1:{port}")).await?;
    println!("crashy listening on {port}");

    let connections: Connections = Rc::default();
    let serving = accept_loop(&listener, connections.clone());
    if let Mode::Forever = mode {
        serving.await;
    } else {
        // Serve until the deadline fires; that drops (stops) the accept loop.
        let _ = serving
            .timeout(wstd::task::sleep(Duration::from_millis(after_ms)))
            .await;
    }

    println!("crashy ending: {}", mode.name());
    match mode {
        Mode::Trap => core::arch::wasm32::unreachable(),
        Mode::Exit(code) => std::process::exit(code),
        Mode::ExitCode(code) => {
            wasip2::cli::exit::exit_with_code(code);
            unreachable!("exit-with-code returned")
        }
        Mode::Spin => spin(),
        Mode::Oom => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&held);
            }
        }
        Mode::Error | Mode::Clean | Mode::Forever => {
            // Cancel the held connections and close the listener so that
            // `main` really returns.
            connections.borrow_mut().clear();
            drop(listener);
            if let Mode::Error = mode {
                Err(io::Error::other("crashy: deliberate error"))
            } else {
                Ok(())
            }
        }
    }
}

/// Busy forever: the host must take the CPU back at its epoch ticks.
fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

async fn accept_loop(listener: &TcpListener, connections: Connections) {
    let mut incoming = listener.incoming();
    while let Some(accepted) = incoming.next().await {
        match accepted {
            Ok(stream) => {
                let task = wstd::runtime::spawn(async move {
                    if let Err(e) = hold(&stream).await {
                        eprintln!("crashy: connection error: {e}");
                    }
                });
                let mut connections = connections.borrow_mut();
                connections.retain(|t| !t.is_finished());
                connections.push(task);
            }
            Err(e) => {
                eprintln!("crashy: accept failed: {e}");
                wstd::task::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Greets the client, then reads (and ignores) until it hangs up.
async fn hold(stream: &TcpStream) -> io::Result<()> {
    let mut writer = stream;
    writer.write_all(b"hello\n").await?;
    writer.flush().await?;
    let mut reader = stream;
    let mut buf = [0u8; 1024];
    while reader.read(&mut buf).await? > 0 {}
    Ok(())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> io::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(format!("{name}={v:?} is not a number"))),
        Err(_) => Ok(default),
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}
