//! The `hearth` command: run workloads, validate manifests, start and build projects, push
//! and pull components, and apply, list and delete workloads on a running host.
//!
//! Owns argument parsing, logging set-up, process exit codes and signal handling. Everything
//! else is delegated: manifests to `hearth-manifest`, instances to `hearth-runtime`, HTTP to
//! `hearth-http`, registries to `hearth-oci`.

mod admin_client;
mod apply;
mod build;
mod cluster;
mod cluster_logs;
mod delete;
mod dev;
mod get;
mod host;
mod ingress;
mod inspect;
mod logging;
mod logs;
mod metrics;
mod new;
mod oci;
mod operator;
mod run;
mod status;
mod table;
mod top;
mod traces;
mod validate;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Instance set-up allocates many small objects per request; mimalloc's thread-local free lists
/// measured ~6% more requests per second than glibc's allocator here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a manifest or usage problem (nothing was started).
const EXIT_INVALID: u8 = 2;
/// Exit code for a failure while starting or running.
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "Run WebAssembly workloads: stateless components plus an optional service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run workloads and serve their HTTP routes until SIGINT or SIGTERM.
    #[command(
        after_help = "Examples:\n  hearth run examples/hello/workload.yaml\n  hearth run --http 0.0.0.0:8080 --admin 127.0.0.1:9090 a.yaml b.yaml"
    )]
    Run(run::RunArgs),
    /// Run a host that joins a cluster over NATS: `hearth run` plus heartbeats and the
    /// controller's start/stop commands; requests for workloads it does not run are
    /// forwarded to a host that does.
    #[command(
        after_help = "Examples:\n  hearth host --nats nats://127.0.0.1:4222 --host-id edge-1 --label zone=eu\n  hearth host --nats tls://nats.internal:4222 --nats-ca ca.pem --nats-creds host.creds --http 0.0.0.0:8080 --advertise 10.0.0.5:8080"
    )]
    Host(Box<host::ClusterHostArgs>),
    /// Run a cluster controller: it places WorkloadDeployment replicas on hosts and keeps
    /// them placed (host loss, failures, scaling, rolling updates). Several may run; one
    /// acts at a time.
    #[command(
        after_help = "Examples:\n  hearth controller --nats nats://127.0.0.1:4222\n  hearth controller --nats nats://a:4222,nats://b:4222,nats://c:4222 --id ctl-1"
    )]
    Controller(cluster::ControllerArgs),
    /// Set a cluster deployment's replica count.
    #[command(
        after_help = "Examples:\n  hearth scale hello --replicas 6 --cluster nats://127.0.0.1:4222"
    )]
    Scale(cluster::ScaleArgs),
    /// hearth on Kubernetes: run the operator that places WorkloadDeployment and Workload
    /// objects' replicas on hearth hosts (one of several acts, elected by a Lease), or print
    /// the custom resource definitions with `hearth operator crd`.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  hearth operator --nats nats://nats.hearth-system:4222\n  hearth operator --nats nats://127.0.0.1:4222 --namespace shop --lease-namespace shop\n  hearth operator crd | kubectl apply -f -"
    )]
    Operator {
        #[command(subcommand)]
        command: Option<operator::OperatorCommand>,
        #[command(flatten)]
        args: operator::OperatorArgs,
    },
    /// Build, run and watch a workload: rebuild what changed and swap it in without dropping
    /// the service or requests in flight; a failed build keeps the last good version serving.
    #[command(
        after_help = "Examples:\n  hearth dev                       # ./workload.yaml on http://127.0.0.1:8080/\n  hearth dev app/workload.yaml --http 127.0.0.1:3000"
    )]
    Dev(dev::DevArgs),
    /// Check manifests and the component files they name, without running anything.
    #[command(
        after_help = "Examples:\n  hearth validate examples/hello/workload.yaml\n\nExit status: 0 when valid, 2 when not."
    )]
    Validate {
        /// Manifest files (YAML, one or more documents each).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Show what a Wasm file is and what it needs: kind, worlds, exports, and who would
    /// satisfy each import on this host.
    #[command(
        after_help = "Examples:\n  hearth inspect guests/target/wasm32-wasip2/release/hello.wasm\n  hearth inspect --manifest examples/cron/workload.yaml cron_service.wasm\n  hearth inspect --json app.wasm\n\nExit status: 0 for a component whose imports are all satisfied, 1 otherwise."
    )]
    Inspect {
        /// The `.wasm` file, or a registry reference (`oci://127.0.0.1:5000/app:v1`).
        file: PathBuf,
        /// Resolve imports that are not host interfaces against this workload manifest.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the workloads of a running host: components, routes, request counts, and each
    /// service's state, restarts and last exit.
    #[command(
        after_help = "Examples:\n  hearth status\n  hearth status --admin 127.0.0.1:9090 --json\n  HEARTH_ADMIN_TOKEN=... hearth status"
    )]
    Status {
        #[command(flatten)]
        admin: admin_client::AdminArgs,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create or update workloads on a running host from manifests: each `Workload` document
    /// is checked here, then sent to the host's admin API, which deploys it (the old version
    /// keeps serving if the new one fails).
    #[command(
        after_help = "Examples:\n  hearth apply -f examples/hello/workload.yaml\n  hearth apply -f a.yaml -f b.yaml --admin 127.0.0.1:9090 --admin-token-file ~/.config/hearth/admin-token\n\nPrints `workload/NAME created`, `configured` or `unchanged` per document. Relative image\npaths are sent as absolute paths on this machine: the host must be able to read them.\nExit status: 0 when every workload was applied, 1 when the host refused one (the others\nare still applied) or cannot be reached, 2 for an invalid manifest or a `WorkloadDeployment`\n(nothing is sent)."
    )]
    Apply(apply::ApplyArgs),
    /// Remove workloads from a running host: their routes stop, their services are stopped.
    #[command(
        after_help = "Examples:\n  hearth delete hello\n  hearth delete shop cache --admin 127.0.0.1:9090\n\nExit status: 0 when every workload was deleted, 1 when one was not found or the host\ncannot be reached, 2 for a name that cannot be a workload's."
    )]
    Delete(delete::DeleteArgs),
    /// List the workloads of a running host, or show one: components, routes, service state,
    /// request count and generation.
    #[command(
        after_help = "Examples:\n  hearth get\n  hearth get hello -o yaml\n  hearth get -o wide --admin 127.0.0.1:9090\n\nExit status: 0 when shown, 1 when NAME is not found or the host cannot be reached."
    )]
    Get(get::GetArgs),
    /// Show a workload's guest lines (stdout, stderr, wasi:logging) from its host, or with
    /// --cluster from every host running the deployment; `-f` keeps streaming.
    #[command(
        after_help = "Examples:\n  hearth logs hello -f\n  hearth logs shop -f --cluster nats://127.0.0.1:4222\n  hearth logs shop --service --since 5m\n  hearth logs shop --component api --json"
    )]
    Logs(logs::LogsArgs),
    /// Live numbers of a running host in the terminal: requests per second, error ratio and
    /// instances in flight per component, state and restarts per service.
    #[command(
        after_help = "Examples:\n  hearth top\n  hearth top --admin 10.0.0.5:9090 --interval 2"
    )]
    Top(top::TopArgs),
    /// Start a project from a template: a Cargo workspace, its workload.yaml, a README and
    /// tests, ready for `hearth build`.
    #[command(
        after_help = "Examples:\n  hearth new --list\n  hearth new http hello\n  hearth new cache my-cache --dir ~/src/my-cache\n\nTemplates: http, service, cron, cache.\nExit status: 0 when created, 2 for an unknown template, a bad NAME or a non-empty directory."
    )]
    New {
        /// The template (`hearth new --list` shows them).
        #[arg(required_unless_present = "list")]
        template: Option<String>,
        /// The workload's name, a DNS label (lowercase letters, digits, `-`); also the
        /// directory's name unless --dir is given.
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// Write the project here instead of ./NAME (must be new or empty).
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// List the templates.
        #[arg(long, conflicts_with_all = ["template", "name", "dir"])]
        list: bool,
    },
    /// Build every component and service of a manifest for wasm32-wasip2: cargo in each
    /// part's `build.path` (once per directory), or its `build.command`; then check each
    /// `image` is a component.
    #[command(
        after_help = "Examples:\n  hearth build\n  hearth build examples/app/workload.yaml --part http --part service\n\nOutputs cargo writes elsewhere (CARGO_TARGET_DIR) are copied to the `image` path.\nExit status: 0 when built, 1 when a build failed, 2 for an invalid manifest or unknown --part."
    )]
    Build {
        /// The workload manifest.
        #[arg(default_value = "workload.yaml")]
        manifest: PathBuf,
        /// Build only this part: a component's name, or `service` (repeatable).
        #[arg(long = "part", value_name = "NAME")]
        parts: Vec<String>,
    },
    /// Push a component to an OCI registry (as an artifact with one `application/wasm`
    /// layer) and print its digest.
    #[command(
        after_help = "Examples:\n  hearth push hello.wasm 127.0.0.1:5000/hello:v1\n  hearth push target/wasm32-wasip2/release/app.wasm ghcr.io/acme/app:1.2.0\n\nCredentials come from `hearth login` or ~/.docker/config.json. Plain HTTP is used for\nlocalhost and 127.0.0.0/8 registries, HTTPS otherwise.\nExit status: 0 when pushed, 1 when the push failed, 2 for a bad reference or a file that is\nnot a component."
    )]
    Push(oci::PushArgs),
    /// Pull a component from an OCI registry into the local cache; print its digest and path.
    #[command(
        after_help = "Examples:\n  hearth pull 127.0.0.1:5000/hello:v1\n  hearth pull ghcr.io/acme/app@sha256:4f1c...\n\nThe cache is $XDG_CACHE_HOME/hearth/oci (default ~/.cache/hearth/oci), by digest; the\nlayer and the manifest are verified against their digests before anything is cached.\nExit status: 0 when pulled, 1 when the pull failed, 2 for a bad reference."
    )]
    Pull(oci::PullArgs),
    /// Store credentials for a registry (checked against it first).
    #[command(
        after_help = "Examples:\n  echo \"$TOKEN\" | hearth login ghcr.io -u alice --password-stdin\n  hearth login 127.0.0.1:5000 -u admin -p secret\n\nCredentials are kept in $XDG_CONFIG_HOME/hearth/auth.json (default\n~/.config/hearth/auth.json, Docker's format, mode 0600); ~/.docker/config.json (or\n$DOCKER_CONFIG/config.json) is read too.\nExit status: 0 when stored, 1 when the registry refused them or cannot be reached, 2 for\nbad usage."
    )]
    Login(oci::LoginArgs),
    /// Forget the credentials `hearth login` stored for a registry.
    #[command(after_help = "Examples:\n  hearth logout ghcr.io\n  hearth logout 127.0.0.1:5000")]
    Logout(oci::LogoutArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  hearth completions bash > ~/.local/share/bash-completion/completions/hearth\n  hearth completions zsh > \"${fpath[1]}/_hearth\"\n  hearth completions fish > ~/.config/fish/completions/hearth.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Keeps the allocator's memory in small pages. mimalloc asks for transparent huge pages
/// for its arenas, and the kernel then zeroes 2 MiB at each first touch: a few of those per
/// thread were a large part of start-up (`perf`), and of the RSS of a host with little to do.
/// Linear memories are not affected: wasmtime does not ask for huge pages.
#[allow(unsafe_code)]
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            metrics::install(&args.host);
            run::main(args)
        }
        Command::Host(args) => {
            metrics::install(&args.run.host);
            host::main(*args)
        }
        Command::Controller(args) => cluster::controller(args),
        Command::Scale(args) => cluster::scale(&args),
        Command::Operator {
            command: Some(operator::OperatorCommand::Crd),
            ..
        } => operator::crd(),
        Command::Operator {
            command: None,
            args,
        } => operator::main(args),
        Command::Dev(args) => {
            metrics::install(&args.host);
            dev::main(args)
        }
        Command::Validate { manifests } => {
            logging::init(logging::LogFormat::Human);
            validate::main(&manifests)
        }
        Command::Status { admin, json } => status::main(&admin, json),
        Command::Apply(args) => apply::main(&args),
        Command::Delete(args) => delete::main(&args),
        Command::Get(args) => get::main(&args),
        Command::Logs(args) => logs::main(&args),
        Command::Top(args) => top::main(&args),
        Command::Inspect {
            file,
            manifest,
            json,
        } => inspect::main(&file, manifest.as_deref(), json),
        Command::New { list: true, .. } => new::list(),
        Command::New {
            template: Some(template),
            name: Some(name),
            dir,
            ..
        } => new::main(&template, &name, dir.as_deref()),
        // clap requires TEMPLATE and NAME without --list.
        Command::New { .. } => ExitCode::from(EXIT_INVALID),
        Command::Build { manifest, parts } => build::main(&manifest, &parts),
        Command::Push(args) => oci::push(args),
        Command::Pull(args) => oci::pull(args),
        Command::Login(args) => oci::login(args),
        Command::Logout(args) => oci::logout(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hearth", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}
