//! `hearth push`, `hearth pull`, `hearth login` and `hearth logout`: moving components through
//! OCI registries from the command line.
//!
//! Owns their arguments, reading passwords, checking a file is a component before pushing,
//! what is printed, and exit codes: 0 done, 1 failed (network, credentials, digest), 2 bad
//! usage (a bad reference or registry, a file that is not a component). The work itself is
//! `hearth-oci`'s.

use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_oci::{Oci, OciOptions, OciReference, PullPolicy};
use hearth_runtime::inspect::{self, WasmKind};
use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The component (`.wasm`) to push.
    file: PathBuf,
    /// Where to: `REGISTRY/REPOSITORY:TAG` (an `oci://` prefix is accepted).
    reference: String,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// What to pull: `REGISTRY/REPOSITORY:TAG` or `REGISTRY/REPOSITORY@sha256:DIGEST`.
    reference: String,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["password", "password_stdin"])))]
pub struct LoginArgs {
    /// The registry: `host[:port]`, e.g. `ghcr.io` or `127.0.0.1:5000`.
    registry: String,
    /// User name.
    #[arg(short, long)]
    username: String,
    /// Password or token (visible to other users in the process list: prefer
    /// --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password or token from standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry whose stored credentials to forget.
    registry: String,
}

/// Logs warnings (retries) only, unless `RUST_LOG` says otherwise; the commands print their
/// own results.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn oci() -> Oci {
    Oci::new(OciOptions {
        progress: true,
        ..OciOptions::from_env()
    })
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Ok(rt.block_on(f)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Err(ExitCode::from(EXIT_FAILED))
        }
    }
}

fn invalid(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_INVALID)
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_FAILED)
}

fn parse_reference(text: &str) -> Result<OciReference, ExitCode> {
    OciReference::parse(text).map_err(invalid)
}

/// `host[:port]` as a reference's registry, with an `https://` prefix or trailing `/` allowed.
fn parse_registry(text: &str) -> Result<String, ExitCode> {
    let bare = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text)
        .trim_end_matches('/');
    match OciReference::parse(&format!("{bare}/probe")) {
        Ok(r) if r.registry == bare => Ok(r.registry),
        _ => Err(invalid(format!(
            "expected a registry like `ghcr.io` or `127.0.0.1:5000`, found `{text}`"
        ))),
    }
}

pub fn push(args: PushArgs) -> ExitCode {
    init_logging();
    let reference = match parse_reference(&args.reference) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if reference.digest.is_some() {
        return invalid(format!(
            "`{}`: expected a tag to push to (`REGISTRY/REPOSITORY:TAG`); the digest is what a push produces",
            args.reference
        ));
    }
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return invalid(format!("cannot read `{}`: {e}", args.file.display())),
    };
    match inspect::kind(&bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return invalid(format!(
                "`{}` is a core WebAssembly module, not a component: expected a component (build for the `wasm32-wasip2` target)",
                args.file.display()
            ));
        }
        WasmKind::NotWasm => {
            return invalid(format!(
                "`{}` is not a WebAssembly file: expected a component built for `wasm32-wasip2`",
                args.file.display()
            ));
        }
    }
    if let Err(e) = inspect::World::read(&bytes) {
        return invalid(format!(
            "`{}` is not a valid component: {e}",
            args.file.display()
        ));
    }
    let oci = oci();
    let credentials = match oci.credentials().lookup(&reference.registry) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let pushed = match block_on(oci.push(&args.file, &reference, &credentials)) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return failed(e),
        Err(code) => return code,
    };
    eprintln!(
        "pushed {} ({} bytes) to {reference}\npin it with: image: oci://{}@{}",
        args.file.display(),
        pushed.size,
        reference.name(),
        pushed.digest
    );
    println!("{}", pushed.digest);
    ExitCode::SUCCESS
}

pub fn pull(args: PullArgs) -> ExitCode {
    init_logging();
    let reference = match parse_reference(&args.reference) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let oci = oci();
    match block_on(oci.pull(&reference, PullPolicy::Always)) {
        Ok(Ok(pulled)) => {
            println!("digest: {}", pulled.digest);
            println!("path: {}", pulled.path.display());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => failed(e),
        Err(code) => code,
    }
}

pub fn login(args: LoginArgs) -> ExitCode {
    init_logging();
    let registry = match parse_registry(&args.registry) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => {
            return invalid("give the password with --password or --password-stdin, not both");
        }
        (Some(p), false) => {
            eprintln!(
                "warning: --password is visible to other users of this machine; prefer --password-stdin"
            );
            p
        }
        (None, _) => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return failed(format!("cannot read the password from standard input: {e}"));
            }
            text.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if password.is_empty() {
        return invalid("the password is empty");
    }
    let oci = oci();
    match block_on(oci.login(&registry, &args.username, &password)) {
        Ok(Ok(file)) => {
            println!(
                "Login succeeded: credentials for {registry} stored in {}",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => failed(e),
        Err(code) => code,
    }
}

pub fn logout(args: LogoutArgs) -> ExitCode {
    let registry = match parse_registry(&args.registry) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let oci = Oci::new(OciOptions::from_env());
    let file = oci
        .credentials()
        .hearth
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    match oci.logout(&registry) {
        Ok(true) => println!("Removed the credentials for {registry} from {file}"),
        Ok(false) => println!("No credentials for {registry} in {file}"),
        Err(e) => return failed(e),
    }
    if oci.credentials().docker_has(&registry) {
        let docker = oci
            .credentials()
            .docker
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        eprintln!(
            "note: {docker} still has credentials for {registry}, which hearth also reads (`docker logout {registry}` removes them)"
        );
    }
    ExitCode::SUCCESS
}

/// For `hearth inspect REF`: the reference's component in the pull cache, pulled if absent.
pub(crate) fn fetch_for_inspect(text: &str) -> Result<std::path::PathBuf, ExitCode> {
    init_logging();
    let reference = parse_reference(text)?;
    match block_on(oci().pull(&reference, PullPolicy::IfNotPresent))? {
        Ok(pulled) => Ok(pulled.path),
        Err(e) => Err(failed(e)),
    }
}
