//! Connecting to NATS: credentials, TLS, and the rule that a host or controller keeps
//! trying forever while the servers are away but stops at once when they refuse it.

use async_nats::{Client, ConnectErrorKind, ConnectOptions};
use std::path::PathBuf;
use std::time::Duration;

/// How to authenticate to NATS and verify it (the `--nats-*` flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuth {
    /// User name for NATS (with --nats-password, or the HEARTH_NATS_PASSWORD variable).
    #[arg(long, value_name = "NAME")]
    pub nats_user: Option<String>,
    /// Password for --nats-user.
    #[arg(
        long,
        env = "HEARTH_NATS_PASSWORD",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
    /// A file holding a NATS token.
    #[arg(long, value_name = "PATH")]
    pub nats_token_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU...`).
    #[arg(long, value_name = "PATH")]
    pub nats_nkey_file: Option<PathBuf>,
    /// A NATS credentials file (JWT and NKey seed).
    #[arg(long, value_name = "PATH")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate(s) (PEM) to verify the NATS servers with; implies TLS.
    #[arg(long, value_name = "PATH")]
    pub nats_ca: Option<PathBuf>,
}

/// The servers to try, from a comma-separated URL list.
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

impl NatsAuth {
    async fn options(&self, name: &str) -> Result<ConnectOptions, String> {
        let mut options = ConnectOptions::new().name(name);
        if let Some(path) = &self.nats_creds {
            options = options.credentials_file(path).await.map_err(|e| {
                format!("{}: cannot read the NATS credentials: {e}", path.display())
            })?;
        }
        if let Some(user) = &self.nats_user {
            let password = self.nats_password.clone().ok_or_else(|| {
                "--nats-user needs a password: --nats-password or HEARTH_NATS_PASSWORD".to_string()
            })?;
            options = options.user_and_password(user.clone(), password);
        }
        if let Some(path) = &self.nats_token_file {
            options = options.token(read_secret(path)?);
        }
        if let Some(path) = &self.nats_nkey_file {
            options = options.nkey(read_secret(path)?);
        }
        if let Some(path) = &self.nats_ca {
            if !path.is_file() {
                return Err(format!(
                    "{}: no such CA file (--nats-ca expects a PEM certificate)",
                    path.display()
                ));
            }
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        Ok(options
            .connection_timeout(Duration::from_secs(3))
            .ping_interval(Duration::from_secs(2))
            .max_reconnects(None)
            .reconnect_delay_callback(backoff))
    }

    /// Connects once to `url` (comma-separated servers); fails on any error (for
    /// short-lived commands like `hearth get`).
    pub async fn connect(&self, url: &str, name: &str) -> Result<Client, String> {
        let options = self.options(name).await?;
        options
            .connect(servers(url))
            .await
            .map_err(|e| describe(url, e.kind(), &e.to_string()))
    }

    /// Connects for a long-running process: a refusal (bad credentials, TLS) fails at
    /// once; servers that are down are retried forever in the background, with backoff.
    pub async fn connect_forever(&self, url: &str, name: &str) -> Result<Client, String> {
        match self.options(name).await?.connect(servers(url)).await {
            Ok(client) => Ok(client),
            Err(e) if refused(e.kind()) || untrusted(&e.to_string()) => {
                Err(describe(url, e.kind(), &e.to_string()))
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "NATS is not reachable yet; retrying in the background");
                self.options(name)
                    .await?
                    .retry_on_initial_connect()
                    .connect(servers(url))
                    .await
                    .map_err(|e| describe(url, e.kind(), &e.to_string()))
            }
        }
    }
}

fn refused(kind: ConnectErrorKind) -> bool {
    matches!(
        kind,
        ConnectErrorKind::Authentication
            | ConnectErrorKind::AuthorizationViolation
            | ConnectErrorKind::Tls
            | ConnectErrorKind::ServerParse
    )
}

/// A TLS certificate the client does not trust is reported as an I/O error; retrying
/// cannot fix it.
fn untrusted(message: &str) -> bool {
    message.contains("certificate")
}

fn describe(url: &str, kind: ConnectErrorKind, detail: &str) -> String {
    if untrusted(detail) {
        return format!(
            "TLS to NATS at {url} failed ({detail}): the server's certificate is not trusted; give its CA with --nats-ca"
        );
    }
    match kind {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => format!(
            "NATS at {url} refused the credentials ({detail}): check --nats-user/--nats-password, --nats-token-file, --nats-nkey-file or --nats-creds"
        ),
        ConnectErrorKind::Tls => format!(
            "TLS to NATS at {url} failed ({detail}): check --nats-ca and that the server's certificate names the address used"
        ),
        _ => format!("cannot connect to NATS at {url}: {detail}"),
    }
}

/// 100 ms doubling to 5 s: fast after a blip, gentle during an outage.
fn backoff(attempt: usize) -> Duration {
    let shift = u32::try_from(attempt.min(6)).unwrap_or(6);
    Duration::from_millis(100u64 << shift).min(Duration::from_secs(5))
}

fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{}: the file is empty", path.display()));
    }
    Ok(secret.to_string())
}
