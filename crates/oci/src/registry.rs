//! Talking to one registry over the OCI Distribution API, through `oci-client`.
//!
//! Owns: choosing plain HTTP for loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`)
//! and HTTPS otherwise; presenting credentials (HTTP Basic, or exchanged for a Bearer token
//! when the registry's challenge asks for one, both handled by `oci-client`); retrying
//! transient failures (connection refused or reset, timeouts, 5xx, 429) with exponential
//! backoff, a bounded number of times; and turning `oci-client`'s errors into [`OciError`]s
//! that say what to do. Checking credentials for `hearth login` is here too. What to pull or
//! push, and the cache, belong to `pull.rs` and `push.rs`.

use crate::artifact::MANIFEST_MEDIA_TYPE;
use crate::credentials::Credentials;
use crate::error::OciError;
use crate::progress::Sink;
use bytes::Bytes;
use futures::TryStreamExt as _;
use hearth_manifest::OciReference;
use indicatif::ProgressBar;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("hearth/", env!("CARGO_PKG_VERSION"));
/// Size of the pieces an upload is streamed in (each one moves the progress bar).
const UPLOAD_CHUNK: usize = 256 * 1024;

/// How often, and how patiently, a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles before each further one.
    pub first_delay: Duration,
}

impl Default for Retry {
    /// Four tries, waiting 250 ms, 500 ms and 1 s in between.
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_millis(250),
        }
    }
}

/// What a request was about, to word its failure.
#[derive(Clone, Copy)]
pub(crate) enum What<'a> {
    Manifest(&'a OciReference),
    Blob(&'a OciReference, &'a str),
    Push(&'a OciReference),
    Login,
}

/// A client for one registry, with the credentials to present to it.
pub(crate) struct Registry {
    client: oci_client::Client,
    auth: RegistryAuth,
    host: String,
    retry: Retry,
}

impl Registry {
    pub(crate) fn new(
        host: &str,
        credentials: &Credentials,
        retry: Retry,
    ) -> Result<Self, OciError> {
        ensure_crypto_provider();
        let config = ClientConfig {
            protocol: if is_loopback(host) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            // One PUT per blob, which every registry must accept, streamed for progress.
            use_monolithic_push: true,
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| OciError::Registry {
            registry: host.to_string(),
            message: format!("cannot set up an HTTP client: {e}"),
        })?;
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        };
        Ok(Self {
            client,
            auth,
            host: host.to_string(),
            retry,
        })
    }

    /// Authenticates for `op`, fetching a Bearer token if the registry's challenge wants one.
    pub(crate) async fn authenticate(
        &self,
        reference: &OciReference,
        op: RegistryOperation,
    ) -> Result<(), OciError> {
        let r = to_client_reference(reference);
        let what = match op {
            RegistryOperation::Pull => What::Manifest(reference),
            RegistryOperation::Push => What::Push(reference),
        };
        self.retrying(what, || self.client.auth(&r, &self.auth, op))
            .await
            .map(drop)
    }

    /// The raw manifest `reference` names, and its digest (checked against a pinned one).
    pub(crate) async fn manifest(
        &self,
        reference: &OciReference,
    ) -> Result<(Bytes, String), OciError> {
        let r = to_client_reference(reference);
        self.retrying(What::Manifest(reference), || {
            self.client
                .pull_manifest_raw(&r, &self.auth, &[MANIFEST_MEDIA_TYPE])
        })
        .await
    }

    /// Downloads a blob into memory; returns its bytes and their digest (not yet compared).
    pub(crate) async fn blob(
        &self,
        reference: &OciReference,
        digest: &str,
        size: u64,
        bar: &ProgressBar,
    ) -> Result<(Vec<u8>, String), OciError> {
        let r = &to_client_reference(reference);
        let client = &self.client;
        self.retrying(What::Blob(reference, digest), move || {
            bar.set_position(0);
            let mut sink = Sink::new(size, bar.clone());
            async move {
                client.pull_blob(r, digest, &mut sink).await?;
                Ok(sink.finish())
            }
        })
        .await
    }

    /// Whether the registry already has a blob (so a push can skip it).
    pub(crate) async fn has_blob(
        &self,
        reference: &OciReference,
        digest: &str,
    ) -> Result<bool, OciError> {
        let r = to_client_reference(reference);
        self.retrying(What::Push(reference), || {
            self.client.blob_exists(&r, digest)
        })
        .await
    }

    /// Uploads a blob in one streamed PUT.
    pub(crate) async fn push_blob(
        &self,
        reference: &OciReference,
        data: Bytes,
        digest: &str,
        bar: &ProgressBar,
    ) -> Result<(), OciError> {
        let r = to_client_reference(reference);
        let size = data.len() as u64;
        self.retrying(What::Push(reference), || {
            bar.set_position(0);
            let pieces: Vec<Result<Bytes, OciDistributionError>> = (0..data.len())
                .step_by(UPLOAD_CHUNK)
                .map(|at| Ok(data.slice(at..data.len().min(at + UPLOAD_CHUNK))))
                .collect();
            let bar = bar.clone();
            let stream = futures::stream::iter(pieces).inspect_ok(move |piece: &Bytes| {
                bar.inc(piece.len() as u64);
            });
            self.client.push_blob_stream(&r, stream, digest, Some(size))
        })
        .await
        .map(drop)
    }

    /// Uploads the manifest under `reference`'s tag.
    pub(crate) async fn push_manifest(
        &self,
        reference: &OciReference,
        manifest: Bytes,
    ) -> Result<(), OciError> {
        let r = to_client_reference(reference);
        let content_type = reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
        self.retrying(What::Push(reference), || {
            self.client
                .push_manifest_raw(&r, manifest.clone(), content_type.clone())
        })
        .await
        .map(drop)
    }

    /// Runs `attempt` until it succeeds, fails for good, or has been tried `retry.attempts`
    /// times; waits between tries.
    async fn retrying<T, F, Fut>(&self, what: What<'_>, mut attempt: F) -> Result<T, OciError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let attempts = self.retry.attempts.max(1);
        let mut delay = self.retry.first_delay;
        for n in 1..=attempts {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && n < attempts => {
                    tracing::warn!(registry = %self.host, attempt = n, error = %chain(&e), "registry request failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(e) if is_transient(&e) => {
                    return Err(OciError::Unreachable {
                        registry: self.host.clone(),
                        attempts,
                        message: innermost(&e),
                    });
                }
                Err(e) => return Err(self.explain(e, what)),
            }
        }
        Err(OciError::Unreachable {
            registry: self.host.clone(),
            attempts,
            message: "no attempt was made".into(),
        })
    }

    /// Words a permanent failure.
    fn explain(&self, e: OciDistributionError, what: What<'_>) -> OciError {
        let registry = self.host.clone();
        let unauthorized = |detail: String| OciError::Unauthorized {
            registry: registry.clone(),
            detail,
        };
        let missing = || match what {
            What::Manifest(r) => Some(OciError::ManifestUnknown {
                reference: r.to_string(),
            }),
            What::Blob(r, digest) => Some(OciError::Registry {
                registry: registry.clone(),
                message: format!("blob unknown: {digest} of {r} does not exist"),
            }),
            What::Push(_) | What::Login => None,
        };
        let status = match &e {
            OciDistributionError::ServerError { code, .. } => Some(*code),
            OciDistributionError::RequestError(re) => re.status().map(|s| s.as_u16()),
            OciDistributionError::UnauthorizedError { .. } => Some(401),
            _ => None,
        };
        match (&e, status) {
            (OciDistributionError::AuthenticationFailure(reason), _) => {
                tracing::debug!(registry = %self.host, reason, "token request refused");
                unauthorized(String::new())
            }
            (_, Some(401 | 403)) => unauthorized(String::new()),
            (OciDistributionError::RegistryError { envelope, .. }, _) => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    return unauthorized(String::new());
                }
                let unknown = codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                });
                if unknown && let Some(err) = missing() {
                    return err;
                }
                let messages: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                OciError::Registry {
                    registry,
                    message: messages.join("; "),
                }
            }
            (OciDistributionError::ImageManifestNotFoundError(_), _) | (_, Some(404)) => missing()
                .unwrap_or_else(|| OciError::Registry {
                    registry: registry.clone(),
                    message: chain(&e),
                }),
            (
                OciDistributionError::DigestError(
                    oci_client::errors::DigestError::VerificationError { expected, actual },
                ),
                _,
            ) => OciError::DigestMismatch {
                expected: expected.clone(),
                actual: actual.clone(),
                what: match what {
                    What::Manifest(r) => format!("manifest of {r}"),
                    What::Blob(r, _) => format!("component layer of {r}"),
                    What::Push(r) => format!("upload to {r}"),
                    What::Login => "login".into(),
                },
            },
            _ => OciError::Registry {
                registry,
                message: chain(&e),
            },
        }
    }
}

/// Checks `credentials` against `registry` the way `docker login` does: asks `/v2/` what it
/// wants, then answers its Basic or Bearer challenge.
pub(crate) async fn check_login(
    host: &str,
    credentials: &Credentials,
    retry: Retry,
) -> Result<(), OciError> {
    ensure_crypto_provider();
    let Credentials::Basic { username, password } = credentials else {
        return Ok(());
    };
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| OciError::Registry {
            registry: host.to_string(),
            message: format!("cannot set up an HTTP client: {e}"),
        })?;
    let scheme = if is_loopback(host) { "http" } else { "https" };
    let base = format!("{scheme}://{host}/v2/");
    let unauthorized = || OciError::Unauthorized {
        registry: host.to_string(),
        detail: String::new(),
    };
    let send = |request: reqwest::RequestBuilder| async move {
        request
            .send()
            .await
            .map_err(OciDistributionError::RequestError)
    };
    // Reuse the retry loop (and its wording) through a throwaway client.
    let registry = Registry::new(host, &Credentials::Anonymous, retry)?;
    let first = registry
        .retrying(What::Login, || send(http.get(&base)))
        .await?;
    if first.status().is_success() {
        return Ok(());
    }
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(OciError::Registry {
            registry: host.to_string(),
            message: format!("`GET {base}` answered {}", first.status()),
        });
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Basic")
        .to_string();
    let (scheme, params) = parse_challenge(&challenge);
    let answer = if scheme.eq_ignore_ascii_case("bearer") {
        let Some(realm) = params.get("realm") else {
            return Err(OciError::Registry {
                registry: host.to_string(),
                message: format!("a Bearer challenge without a realm: `{challenge}`"),
            });
        };
        let mut query: Vec<(&str, &str)> = vec![("account", username.as_str())];
        if let Some(service) = params.get("service") {
            query.push(("service", service));
        }
        registry
            .retrying(What::Login, || {
                send(
                    http.get(realm.as_str())
                        .query(&query)
                        .basic_auth(username, Some(password)),
                )
            })
            .await?
    } else {
        registry
            .retrying(What::Login, || {
                send(http.get(&base).basic_auth(username, Some(password)))
            })
            .await?
    };
    if answer.status().is_success() {
        Ok(())
    } else if matches!(answer.status().as_u16(), 401 | 403) {
        Err(unauthorized())
    } else {
        Err(OciError::Registry {
            registry: host.to_string(),
            message: format!("checking the credentials answered {}", answer.status()),
        })
    }
}

/// `Bearer realm="https://auth.example/token",service="registry"` → (`Bearer`, params).
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

/// Plain HTTP is used for these; everything else is HTTPS.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn to_client_reference(r: &OciReference) -> Reference {
    match (&r.tag, &r.digest) {
        (Some(tag), Some(digest)) => Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            tag.clone(),
            digest.clone(),
        ),
        (_, Some(digest)) => {
            Reference::with_digest(r.registry.clone(), r.repository.clone(), digest.clone())
        }
        (tag, None) => Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

/// Worth another try: the network or the server, not the request.
fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(re) => {
            re.is_connect()
                || re.is_timeout()
                || re.is_body()
                || (re.is_request() && re.status().is_none())
                || re
                    .status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        OciDistributionError::ServerError { code, .. } => {
            *code >= 500 || *code == 429 || *code == 408
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

/// The error and its sources, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The deepest cause ("Connection refused (os error 111)"), which says the most.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// reqwest is built without a bundled TLS provider; use *ring*, which the workspace already
/// has. A provider someone else installed first is kept.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_registries_use_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "127.1.2.3",
            "x.localhost:80",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "[2001:db8::1]:443",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn challenges() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token?x=1,2",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token?x=1,2");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }
}
