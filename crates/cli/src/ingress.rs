//! The ingress flags `run`, `host` and `dev` share: HTTPS, and the limits on each client.

use hearth_http::{ClientLimits, Tls, TlsFiles};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the certificate files are looked at for changes.
const TLS_RELOAD_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Ingress: HTTPS and client limits")]
pub struct IngressArgs {
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate chain (PEM) as the
    /// default certificate; needs --tls-key. Reloaded when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate per server name (SNI) from this directory: NAME.crt
    /// with NAME.key, or NAME/fullchain.pem with NAME/privkey.pem (NAME may be `*.domain`).
    /// Reloaded when its files change.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Largest request head in bytes (at least 8192 in effect); larger gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = ClientLimits::default().max_header_bytes)]
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets 431.
    #[arg(long, value_name = "N", default_value_t = ClientLimits::default().max_headers)]
    pub max_headers: usize,
    /// Seconds a client has to send a whole request head once it begins one (and a new
    /// connection, its first); then 408 and the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub header_timeout: Duration,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub idle_timeout: Duration,
    /// Connections open at once; more are answered 503 with Retry-After (or closed, on
    /// HTTPS). Keep it under the process's open-file limit.
    #[arg(long, value_name = "N", default_value_t = ClientLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections open at once from one client address; more are refused the same way.
    #[arg(long, value_name = "N", default_value_t = ClientLimits::default().max_connections_per_client)]
    pub max_connections_per_client: usize,
    /// HTTP/2 streams open at once on one connection.
    #[arg(long, value_name = "N", default_value_t = ClientLimits::default().max_h2_streams)]
    pub max_h2_streams: u32,
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a positive number of seconds, found `{value}`"))
}

impl IngressArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> ClientLimits {
        ClientLimits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            max_h2_streams: self.max_h2_streams,
            ..ClientLimits::default()
        }
    }

    /// The certificates to serve HTTPS with, loaded and watched; `None` for plain HTTP.
    pub fn tls(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        let files = TlsFiles {
            cert_and_key: self.tls_cert.clone().zip(self.tls_key.clone()),
            dir: self.tls_dir.clone(),
        };
        if files == TlsFiles::default() {
            return Ok(None);
        }
        let tls = Tls::load(files).map_err(|e| anyhow::anyhow!("cannot serve HTTPS: {e}"))?;
        tls.watch(TLS_RELOAD_PERIOD)?;
        Ok(Some(Arc::new(tls)))
    }

    /// The scheme clients reach the ingress with.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() || self.tls_dir.is_some() {
            "https"
        } else {
            "http"
        }
    }
}
