//! Running the build tools: the toolchain checks, `cargo build` for `wasm32-wasip2` (reading
//! its JSON messages for the `.wasm` files it wrote), and `sh -c` for a part's
//! `build.command`. Output is either streamed to the terminal or captured for the caller.
//!
//! Which parts a run serves, and where their images go, is decided in `build.rs`.

use super::{Failed, Options};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The target every part is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Checks that cargo runs and, where rustup manages the toolchain, that the target is
/// installed, so the user gets the exact fix instead of a page of compiler errors.
pub fn check_toolchain(dir: &Path) -> Result<(), Failed> {
    match Command::new("cargo")
        .arg("--version")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failed::new(
                "cargo was not found on PATH; install Rust from https://rustup.rs",
            ));
        }
        Err(e) => return Err(Failed::new(format!("cannot run cargo: {e}"))),
        Ok(_) => {}
    }
    // Without rustup (a distribution's Rust, say) there is nothing to ask; cargo will say.
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !installed.lines().any(|l| l.trim() == TARGET) {
        return Err(Failed::new(format!(
            "the Rust target {TARGET} is not installed; run: rustup target add {TARGET}"
        )));
    }
    Ok(())
}

/// Runs `cargo build --release --target wasm32-wasip2` in `dir` and returns the `.wasm`
/// files it produced (fresh or rebuilt), wherever its target directory is.
pub fn cargo(
    dir: &Path,
    shown: &str,
    opts: &Options,
    log: &mut String,
) -> Result<Vec<PathBuf>, Failed> {
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if opts.capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Failed::new("cargo was not found on PATH; install Rust from https://rustup.rs")
        }
        _ => Failed::new(format!("cannot run cargo in {shown}: {e}")),
    })?;
    // Drain stderr on its own thread so neither pipe can fill up and stall cargo.
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    });
    let mut artifacts = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(msg) => artifacts.extend(wasm_artifacts(&msg)),
                // Anything that is not a message is passed on as it is.
                Err(_) if opts.capture => {
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(_) => println!("{line}"),
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failed::new(format!("cannot wait for cargo in {shown}: {e}")))?;
    let captured = stderr.and_then(|t| t.join().ok());
    if let Some(text) = &captured {
        log.push_str(text);
    }
    if !status.success() {
        return Err(failed(
            format!("cargo build --release --target {TARGET}"),
            shown,
            status,
            captured,
        ));
    }
    Ok(artifacts)
}

/// The `.wasm` files a `compiler-artifact` message names.
fn wasm_artifacts(msg: &serde_json::Value) -> Vec<PathBuf> {
    if msg["reason"] != "compiler-artifact" {
        return Vec::new();
    }
    msg["filenames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .filter(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
        .collect()
}

/// Runs `sh -c command` in `dir`.
pub fn shell(
    dir: &Path,
    shown: &str,
    command: &str,
    opts: &Options,
    log: &mut String,
) -> Result<(), Failed> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null());
    if opts.capture {
        let out = cmd
            .output()
            .map_err(|e| Failed::new(format!("cannot run sh in {shown}: {e}")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        log.push_str(&text);
        if !out.status.success() {
            return Err(failed(
                format!("`{command}`"),
                shown,
                out.status,
                Some(text),
            ));
        }
    } else {
        let status = cmd
            .status()
            .map_err(|e| Failed::new(format!("cannot run sh in {shown}: {e}")))?;
        if !status.success() {
            return Err(failed(format!("`{command}`"), shown, status, None));
        }
    }
    Ok(())
}

fn failed(what: String, shown: &str, status: ExitStatus, output: Option<String>) -> Failed {
    let status = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    let message = if output.is_some() {
        format!("{what} failed in {shown} ({status})")
    } else {
        format!("{what} failed in {shown} ({status}); its output is above")
    };
    Failed { message, output }
}
