//! HTTPS on the ingress, with certificates this test makes: HTTP/1.1 and HTTP/2 by ALPN,
//! a certificate per server name (SNI) from a directory, and a replaced certificate served
//! without a restart while connections made before it keep working.

use crate::support::{
    Hearth, TempDir, run_expecting_failure_with, signed_cert, test_ca, wasm, workload,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One verified TLS connection: the stream, the certificate the server chose, and the
/// protocol ALPN settled on.
struct Connected {
    stream: TlsStream<TcpStream>,
    leaf: Vec<u8>,
    h2: bool,
}

async fn connect(addr: SocketAddr, ca: &Path, name: &str, alpn: &[&[u8]]) -> Connected {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server = ServerName::try_from(name.to_string()).unwrap();
    let stream = connector
        .connect(server, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake for {name}: {e}"));
    let (_, session) = stream.get_ref();
    let leaf = session.peer_certificates().unwrap()[0].to_vec();
    let h2 = session.alpn_protocol() == Some(b"h2");
    Connected { stream, leaf, h2 }
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// A client on one connection, HTTP/1.1 or HTTP/2 as negotiated.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    async fn over(conn: Connected) -> Self {
        let io = TokioIo::new(conn.stream);
        if conn.h2 {
            let (send, driver) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(driver);
            Client::H2(send)
        } else {
            let (send, driver) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(driver);
            Client::H1(send)
        }
    }

    async fn get(&mut self, authority: &str, path: &str) -> (u16, String) {
        let request = hyper::Request::get(format!("https://{authority}{path}"))
            .header("host", authority)
            .body(Empty::new())
            .unwrap();
        let response = match self {
            Client::H1(send) => send.send_request(request).await,
            Client::H2(send) => {
                // HTTP/2 carries the authority in the URI; `host` is not allowed.
                let (mut parts, body) = request.into_parts();
                parts.headers.remove("host");
                send.send_request(hyper::Request::from_parts(parts, body))
                    .await
            }
        }
        .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Signs a certificate for `sans` and installs it in `dir` as `NAME.crt` and `NAME.key`.
fn install(dir: &Path, certs: &Path, name: &str, sans: &str) -> PathBuf {
    let stem = name.replace('*', "wild");
    let (pem, key) = signed_cert(dir, &stem, name, sans);
    // The key first: until the certificate follows, the pair does not match and the host
    // keeps the set it has.
    std::fs::copy(&key, certs.join(format!("{name}.key"))).unwrap();
    std::fs::copy(&pem, certs.join(format!("{name}.crt"))).unwrap();
    certs.join(format!("{name}.crt"))
}

/// The faults guest at `/`, as a manifest in `dir`.
fn faults_manifest(dir: &TempDir) -> PathBuf {
    dir.write(
        "w.yaml",
        workload(
            "faults",
            &format!(
                "    - name: web\n      image: {}\n      http: {{ path: / }}\n",
                wasm("faults")
            ),
        ),
    )
}

#[test]
fn https_serves_both_protocols_picks_certificates_by_name_and_reloads_them() {
    let dir = TempDir::new("tls");
    let ca = test_ca(&dir.0);
    let (default_pem, default_key) = signed_cert(
        &dir.0,
        "default",
        "localhost",
        "DNS:localhost,DNS:other.test,IP:127.0.0.1",
    );
    let certs = dir.0.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let a = install(&dir.0, &certs, "a.test", "DNS:a.test");
    let wild = install(&dir.0, &certs, "*.b.test", "DNS:*.b.test");
    let manifest = faults_manifest(&dir);
    let host = Hearth::start_with(
        &[&manifest],
        &[
            "--tls-cert",
            default_pem.to_str().unwrap(),
            "--tls-key",
            default_key.to_str().unwrap(),
            "--tls-dir",
            certs.to_str().unwrap(),
        ],
    );
    let addr = host.http;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // HTTP/1.1 when that is all the client offers; the guest sees `https`.
        let conn = connect(addr, &ca, "localhost", &[b"http/1.1"]).await;
        assert!(!conn.h2);
        assert_eq!(conn.leaf, der(&default_pem));
        let mut h1 = Client::over(conn).await;
        assert_eq!(
            h1.get("localhost", "/scheme").await,
            (200, "https\n".into())
        );

        // HTTP/2 by ALPN, with the certificate of the name asked for.
        let conn = connect(addr, &ca, "a.test", &[b"h2", b"http/1.1"]).await;
        assert!(conn.h2, "ALPN settles on h2");
        assert_eq!(conn.leaf, der(&a));
        let mut h2 = Client::over(conn).await;
        assert_eq!(h2.get("a.test", "/ok").await, (200, "ok\n".into()));
        assert_eq!(h2.get("a.test", "/scheme").await, (200, "https\n".into()));

        // A wildcard, and the default for a name with no certificate of its own.
        let conn = connect(addr, &ca, "x.b.test", &[b"h2"]).await;
        assert_eq!(conn.leaf, der(&wild));
        let conn = connect(addr, &ca, "other.test", &[b"h2"]).await;
        assert_eq!(conn.leaf, der(&default_pem));

        // A new certificate for a.test is served to new connections within a few seconds,
        // with no restart; the connection made before it keeps working.
        let old = der(&a);
        let renewed = der(&install(&dir.0, &certs, "a.test", "DNS:a.test"));
        assert_ne!(renewed, old);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let conn = connect(addr, &ca, "a.test", &[b"h2"]).await;
            if conn.leaf == renewed {
                let mut fresh = Client::over(conn).await;
                assert_eq!(fresh.get("a.test", "/ok").await.0, 200);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the renewed certificate was not served"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(h2.get("a.test", "/ok").await.0, 200, "an older connection");
        assert_eq!(h1.get("localhost", "/ok").await.0, 200);

        // A broken file is logged and the set in use stays.
        std::fs::write(&a, "not a certificate\n").unwrap();
        host.wait_for_log(
            &["TLS certificates not reloaded", "no certificate"],
            Duration::from_secs(10),
        );
        let conn = connect(addr, &ca, "a.test", &[b"h2"]).await;
        assert_eq!(conn.leaf, renewed);
    });
}

#[test]
fn a_certificate_that_cannot_be_loaded_is_named_at_start() {
    let dir = TempDir::new("tls-bad");
    let manifest = faults_manifest(&dir);
    let cert = dir.write("server.crt", "-----BEGIN NOTHING-----\n");
    let key = dir.write("server.key", "");
    let err = run_expecting_failure_with(
        &manifest,
        &[
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("cannot serve HTTPS"), "{err}");
    assert!(err.contains("server.crt"), "{err}");
    assert!(err.contains("expected"), "{err}");
}
