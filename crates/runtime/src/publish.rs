//! Published ports: real host ports whose connections are spliced into a service port of the
//! workload's network.
//!
//! They belong to the workload, not to one service incarnation or version: an update carries
//! every host port it still publishes over (pointing it at the new service port if that
//! changed), binds the new ones before anything else changes (so a port that is taken fails
//! the update and nothing else), and closes the ones it no longer publishes. Closing waits
//! for the accept task to end, so the port can be bound again when it returns.

use hearth_manifest::{Part, ServicePort, Workload};
use hearth_net::Network;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A host port published for a service port.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    /// The service's port inside the workload.
    pub port: u16,
    /// The host address whose connections are spliced into it.
    pub host: SocketAddr,
}

/// One published host port and its accept task.
struct Publisher {
    host: SocketAddr,
    /// The service port it splices into; an update may change it.
    target: Arc<AtomicU16>,
    stop: watch::Sender<bool>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// The published ports of one workload version.
#[derive(Default)]
pub(crate) struct Publishers {
    ports: Vec<Arc<Publisher>>,
}

impl Publishers {
    /// The ports of `workload`'s service: those of `previous` that are still published are
    /// carried over; new ones are bound on `ip`. Nothing is closed here (see [`Self::retire`]).
    pub(crate) fn update(
        workload: &Workload,
        previous: Option<&Publishers>,
        network: &Arc<Network>,
        ip: std::net::IpAddr,
        place: &tokio::runtime::Handle,
    ) -> Result<Self, crate::DeployError> {
        let ports: &[ServicePort] = workload
            .spec
            .service
            .as_ref()
            .map_or(&[], |s| s.ports.as_slice());
        let mut out = Publishers::default();
        for (i, port) in ports.iter().enumerate() {
            let Some(host_port) = port.publish else {
                continue;
            };
            let host = SocketAddr::new(ip, host_port);
            let carried = previous.and_then(|p| p.ports.iter().find(|k| k.host == host));
            if let Some(kept) = carried {
                kept.target.store(port.port, Ordering::Relaxed);
                out.ports.push(Arc::clone(kept));
                continue;
            }
            let listener = bind(host).map_err(|e| {
                crate::DeployError::at(
                    workload,
                    workload.field_of(Part::Service, &format!("ports[{i}].publish")),
                    format!("cannot publish on {host}: {e}"),
                )
            })?;
            out.ports
                .push(Publisher::start(listener, host, port.port, network, place));
        }
        Ok(out)
    }

    /// What is published now.
    pub(crate) fn ports(&self) -> Vec<PublishedPort> {
        self.ports
            .iter()
            .map(|p| PublishedPort {
                port: p.target.load(Ordering::Relaxed),
                host: p.host,
            })
            .collect()
    }

    /// Closes the ports that `next` did not carry over.
    pub(crate) fn retire(&self, next: &Publishers) {
        for p in &self.ports {
            if !next.ports.iter().any(|n| Arc::ptr_eq(n, p)) {
                p.close();
            }
        }
    }

    /// Closes every port.
    pub(crate) fn close_all(&self) {
        self.ports.iter().for_each(|p| p.close());
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl Publisher {
    fn start(
        listener: std::net::TcpListener,
        host: SocketAddr,
        port: u16,
        network: &Arc<Network>,
        place: &tokio::runtime::Handle,
    ) -> Arc<Self> {
        let target = Arc::new(AtomicU16::new(port));
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let network = Arc::clone(network);
        let splice_to = Arc::clone(&target);
        place.spawn(async move {
            // Dropped when the task ends, however it ends: `close` waits for that.
            let _done = done_tx;
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => accept_loop(l, network, splice_to, stop_rx).await,
                Err(e) => tracing::error!(error = %e, %host, "cannot serve a published port"),
            }
        });
        Arc::new(Publisher {
            host,
            target,
            stop,
            done: Mutex::new(Some(done_rx)),
        })
    }

    /// Stops accepting and waits (bounded) until the listener is closed.
    fn close(&self) {
        let _ = self.stop.send(true);
        let done = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            let _ = done.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// Splices each accepted connection into the service port `target` names.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    network: Arc<Network>,
    target: Arc<AtomicU16>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (mut tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "published port accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // `close` sent true, or every owner dropped the publisher: stop either way.
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let port = target.load(Ordering::Relaxed);
        match network.connect(port) {
            Ok(mut stream) => {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
                });
            }
            Err(e) => {
                tracing::debug!(%peer, port, error = %e, "published port: service not listening")
            }
        }
    }
}
