//! HTTPS on the ingress: rustls, HTTP/2 and HTTP/1.1 offered by ALPN, a default certificate
//! and one per server name (SNI) from a directory, all reloaded when their files change.
//!
//! A directory holds, for each name, either `NAME.crt` and `NAME.key`, or a folder `NAME/`
//! with `fullchain.pem` and `privkey.pem` (the layout certbot writes). `NAME` may be a
//! wildcard such as `*.example.com`. A handshake takes the certificate of its exact server
//! name, else of the name's wildcard, else the default one; with none of those it fails.
//!
//! Reloading swaps the whole set for new handshakes only; connections already open keep the
//! certificate they began with. A set that fails to load (a half-written file, a key that
//! does not match) is logged and the one in use stays.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// Where the ingress's certificates come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The default certificate chain and its key (PEM), for any server name.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// A directory of certificates by server name.
    pub dir: Option<PathBuf>,
}

/// A certificate set that cannot be loaded, naming the file and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct TlsError {
    pub path: PathBuf,
    pub problem: String,
}

fn problem(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The ingress's TLS set-up: a rustls configuration whose certificates follow the files.
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<Resolver>,
}

impl Tls {
    /// Loads every certificate `files` names; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = Certificates::load(&files, &provider)?;
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(certificates),
            stamp: std::sync::Mutex::new(stamp(&files)),
            files,
            provider: Arc::clone(&provider),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| problem(Path::new("tls"), e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
        })
    }

    /// The acceptor for the ingress's connections.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Looks at the files every `period` and reloads the set when any changed, until this
    /// `Tls` is dropped.
    pub fn watch(&self, period: Duration) -> std::io::Result<()> {
        let resolver = Arc::downgrade(&self.resolver);
        std::thread::Builder::new()
            .name("hearth-tls-reload".into())
            .spawn(move || watch(&resolver, period))
            .map(drop)
    }

    /// Reloads now if any file changed since the last look; true when a new set is in use.
    pub fn reload_if_changed(&self) -> bool {
        self.resolver.reload_if_changed()
    }
}

fn watch(resolver: &Weak<Resolver>, period: Duration) {
    loop {
        std::thread::sleep(period);
        let Some(resolver) = resolver.upgrade() else {
            return;
        };
        resolver.reload_if_changed();
    }
}

/// The certificates in use, by server name.
struct Certificates {
    default: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl Certificates {
    fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Self, TlsError> {
        let default = match &files.cert_and_key {
            Some((cert, key)) => Some(Arc::new(certified(cert, key, provider)?)),
            None => None,
        };
        let mut by_name = HashMap::new();
        if let Some(dir) = &files.dir {
            for (name, cert, key) in pairs(dir)? {
                by_name.insert(name, Arc::new(certified(&cert, &key, provider)?));
            }
        }
        if default.is_none() && by_name.is_empty() {
            let dir = files.dir.as_deref().unwrap_or(Path::new("."));
            return Err(problem(
                dir,
                "no certificates: expected NAME.crt with NAME.key, or NAME/fullchain.pem with NAME/privkey.pem",
            ));
        }
        Ok(Self { default, by_name })
    }

    fn for_name(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = name.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.by_name.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        found.or(self.default.as_ref()).cloned()
    }
}

/// The certificate and key files of each name in `dir`.
fn pairs(dir: &Path) -> Result<Vec<(String, PathBuf, PathBuf)>, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| problem(dir, e.to_string()))?;
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| problem(dir, e.to_string()))?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            let cert = path.join("fullchain.pem");
            if cert.exists() {
                pairs.push((file.to_ascii_lowercase(), cert, path.join("privkey.pem")));
            }
        } else if let Some(name) = file.strip_suffix(".crt") {
            pairs.push((
                name.to_ascii_lowercase(),
                path.clone(),
                path.with_extension("key"),
            ));
        }
    }
    pairs.sort();
    Ok(pairs)
}

fn certified(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| problem(path, e.to_string()));
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(cert, format!("expected PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(problem(
            cert,
            "no certificate: expected a PEM `CERTIFICATE` block",
        ));
    }
    let secret = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| {
        problem(
            key,
            format!("expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, secret, provider)
        .map_err(|e| problem(key, format!("unusable with {}: {e}", cert.display())))
}

/// What each watched file looked like: path, length and modification time.
type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn stamp(files: &TlsFiles) -> Stamp {
    let mut paths = Vec::new();
    if let Some((cert, key)) = &files.cert_and_key {
        paths.extend([cert.clone(), key.clone()]);
    }
    if let Some(dir) = &files.dir {
        paths.push(dir.clone());
        for (_, cert, key) in pairs(dir).unwrap_or_default() {
            paths.extend([cert, key]);
        }
    }
    paths
        .into_iter()
        .map(|path| {
            // Follows symbolic links, as certbot's `live/` directory uses them.
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// Picks a certificate per handshake from the set in use.
struct Resolver {
    current: ArcSwap<Certificates>,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    /// The files as last looked at (loaded or not).
    stamp: std::sync::Mutex<Stamp>,
}

impl Resolver {
    fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        {
            let mut last = self
                .stamp
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == now {
                return false;
            }
            *last = now;
        }
        match Certificates::load(&self.files, &self.provider) {
            Ok(certificates) => {
                let names = certificates.by_name.len();
                self.current.store(Arc::new(certificates));
                tracing::info!(names, "TLS certificates reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificates not reloaded; the ones in use stay");
                false
            }
        }
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("files", &self.files)
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().for_name(hello.server_name())
    }
}
