//! Bearer-token registries: `login`, `push` and `pull` through a token challenge.
//!
//! This is the one test against a stand-in rather than the real registry: the distribution
//! registry's token auth needs a separate token server that signs JWTs with a certificate
//! chain the registry trusts, which cannot be set up here. The stand-in below speaks just
//! enough of the Distribution API (in memory), answers every `/v2/` request without a valid
//! token with `401` and a `Bearer realm=...,service=...` challenge, and hands out a token at
//! the realm for the right Basic credentials. Basic-auth registries are tested against the
//! real `docker-registry` in `crates/cli/tests/all/oci.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use bytes::Bytes;
use hearth_oci::{
    CredentialFiles, Credentials, Oci, OciError, OciOptions, OciReference, PullPolicy, Retry,
};
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "token-for-alice";

#[derive(Default)]
struct Fake {
    /// Blobs and manifests by digest, manifests also by `name:tag`.
    store: Mutex<HashMap<String, Bytes>>,
    tokens_issued: AtomicU32,
    uploads: AtomicU32,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, headers: &[(&str, String)], body: impl Into<Bytes>) -> Reply {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    builder.body(Full::new(body.into())).unwrap()
}

fn digest(bytes: &[u8]) -> String {
    hearth_oci::sha256_digest(bytes)
}

async fn handle(fake: Arc<Fake>, addr: SocketAddr, req: Request<hyper::body::Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();

    if path == "/token" {
        let wanted = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        );
        if auth != wanted {
            return reply(StatusCode::UNAUTHORIZED, &[], "bad credentials");
        }
        fake.tokens_issued.fetch_add(1, Ordering::SeqCst);
        return reply(
            StatusCode::OK,
            &[("content-type", "application/json".into())],
            format!(r#"{{"token":"{TOKEN}"}}"#),
        );
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return reply(StatusCode::NOT_FOUND, &[], "");
    };
    if auth != format!("Bearer {TOKEN}") {
        return reply(
            StatusCode::UNAUTHORIZED,
            &[(
                "www-authenticate",
                format!(r#"Bearer realm="http://{addr}/token",service="fake-registry""#),
            )],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    if rest.is_empty() {
        return reply(StatusCode::OK, &[], "{}");
    }
    let mut store = fake.store.lock().unwrap();
    let method = parts.method.as_str();
    if let Some((name, _upload)) = rest.split_once("/blobs/uploads/") {
        return match method {
            "POST" => reply(
                StatusCode::ACCEPTED,
                &[("location", format!("/v2/{name}/blobs/uploads/u1"))],
                "",
            ),
            "PUT" => {
                let wanted = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("digest="))
                    .unwrap_or("")
                    .replace("%3A", ":");
                assert_eq!(digest(&body), wanted, "uploaded bytes match their digest");
                fake.uploads.fetch_add(1, Ordering::SeqCst);
                store.insert(wanted.clone(), body);
                reply(
                    StatusCode::CREATED,
                    &[("location", format!("/v2/{name}/blobs/{wanted}"))],
                    "",
                )
            }
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, &[], ""),
        };
    }
    if let Some((_, d)) = rest.split_once("/blobs/") {
        return match store.get(d) {
            Some(b) => reply(
                StatusCode::OK,
                &[("docker-content-digest", d.to_string())],
                if method == "HEAD" {
                    Bytes::new()
                } else {
                    b.clone()
                },
            ),
            None => reply(StatusCode::NOT_FOUND, &[], ""),
        };
    }
    if let Some((name, reference)) = rest.split_once("/manifests/") {
        let key = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            format!("{name}:{reference}")
        };
        return match method {
            "PUT" => {
                let d = digest(&body);
                store.insert(d.clone(), body.clone());
                store.insert(key, body);
                reply(
                    StatusCode::CREATED,
                    &[
                        ("location", format!("/v2/{name}/manifests/{d}")),
                        ("docker-content-digest", d),
                    ],
                    "",
                )
            }
            _ => match store.get(&key) {
                Some(b) => reply(
                    StatusCode::OK,
                    &[
                        ("content-type", hearth_oci::MANIFEST_MEDIA_TYPE.into()),
                        ("docker-content-digest", digest(b)),
                    ],
                    b.clone(),
                ),
                None => reply(
                    StatusCode::NOT_FOUND,
                    &[("content-type", "application/json".into())],
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ),
            },
        };
    }
    reply(StatusCode::NOT_FOUND, &[], "")
}

/// Serves the stand-in on a free loopback port until the test's runtime ends.
async fn start() -> (SocketAddr, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake::default());
    let shared = Arc::clone(&fake);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fake = Arc::clone(&fake);
                    async move { Ok::<_, std::convert::Infallible>(handle(fake, addr, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, fake)
}

fn temp(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-oci-bearer-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn client(dir: &std::path::Path) -> Oci {
    Oci::new(OciOptions {
        cache_dir: dir.join("cache"),
        credentials: CredentialFiles {
            hearth: Some(dir.join("auth.json")),
            docker: None,
        },
        progress: false,
        retry: Retry {
            attempts: 1,
            first_delay: std::time::Duration::from_millis(1),
        },
    })
}

#[tokio::test(flavor = "current_thread")]
async fn login_push_and_pull_through_a_bearer_challenge() {
    let (addr, fake) = start().await;
    let dir = temp("roundtrip");
    let oci = client(&dir);
    let host = addr.to_string();
    let reference = OciReference::parse(&format!("{host}/acme/hello:v1")).unwrap();
    let component = b"\0asm\x0d\x00\x01\x00 pretend component".to_vec();
    let file = dir.join("c.wasm");
    std::fs::write(&file, &component).unwrap();

    // Without credentials the token endpoint is never satisfied.
    let e = oci
        .push(&file, &reference, &Credentials::Anonymous)
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "unauthorized: check the credentials for {host} (hearth login {host})"
        )),
        "{e}"
    );
    let e = oci.login(&host, "alice", "wrong").await.unwrap_err();
    assert!(matches!(e, OciError::Unauthorized { .. }), "{e}");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 0);

    oci.login(&host, "alice", "s3cret").await.unwrap();
    let credentials = oci.credentials().lookup(&host).unwrap();
    let pushed = oci.push(&file, &reference, &credentials).await.unwrap();
    assert_eq!(fake.uploads.load(Ordering::SeqCst), 2, "layer and config");

    let pulled = oci.pull(&reference, PullPolicy::Always).await.unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(std::fs::read(&pulled.path).unwrap(), component);
    assert!(
        fake.tokens_issued.load(Ordering::SeqCst) >= 3,
        "login, push, pull"
    );

    let missing = OciReference::parse(&format!("{host}/acme/hello:nope")).unwrap();
    let e = oci
        .pull(&missing, PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("manifest unknown: {host}/acme/hello:nope does not exist")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn parallel_pulls_and_retries_give_up_on_a_dead_registry() {
    let (addr, _fake) = start().await;
    let dir = temp("parallel");
    let oci = client(&dir);
    let host = addr.to_string();
    oci.login(&host, "alice", "s3cret").await.unwrap();
    let credentials = oci.credentials().lookup(&host).unwrap();
    let mut asked = Vec::new();
    for (i, body) in [b"\0asm one".as_slice(), b"\0asm two"].iter().enumerate() {
        let file = dir.join(format!("{i}.wasm"));
        std::fs::write(&file, body).unwrap();
        let r = OciReference::parse(&format!("{host}/p/c{i}:v1")).unwrap();
        oci.push(&file, &r, &credentials).await.unwrap();
        asked.push((r, PullPolicy::IfNotPresent));
    }
    // A port nothing listens on: refused at once, retried, then reported.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    asked.push((
        OciReference::parse(&format!("{dead}/p/c:v1")).unwrap(),
        PullPolicy::IfNotPresent,
    ));
    let results = oci.pull_all(&asked).await;
    assert_eq!(
        std::fs::read(&results[0].as_ref().unwrap().path).unwrap(),
        b"\0asm one"
    );
    assert_eq!(
        std::fs::read(&results[1].as_ref().unwrap().path).unwrap(),
        b"\0asm two"
    );
    let e = results[2].as_ref().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot reach the registry {dead} (after 1 attempt)"
        )),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
