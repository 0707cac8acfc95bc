//! The ingress: thread-per-core HTTP serving. Each worker thread runs its own current-thread
//! async runtime and its own `SO_REUSEPORT` listener on the same address, so a connection and
//! every instance serving it stay on one core with no cross-thread wake-ups. Each worker
//! serves HTTP/1.1 (keep-alive) and HTTP/2, routes each request, and on shutdown stops
//! accepting and drains its in-flight requests within a bound.

use crate::conn::{ConnState, Timeouts, Tracked, Watched};
use crate::forward::{self, Forward};
use crate::limits::{self, ClientLimits, Gate, HYPER_MAX_HEADERS, HYPER_MIN_BUF};
use crate::responses;
use crate::router::Deployed;
use crate::steer::{Handoff, Steered, Steering};
use crate::tls::Tls;
use hearth_runtime::OutgoingBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How the ingress behaves at shutdown, what a client may do, whether it speaks TLS, and
/// where requests without a local route go.
#[derive(Clone)]
pub struct ServeOptions {
    /// Longest time in-flight requests get to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// In a cluster: the hosts to forward a request to when no workload here serves it.
    pub forward: Option<Arc<dyn Forward>>,
    /// The limits on each client.
    pub limits: ClientLimits,
    /// Serve HTTPS with these certificates instead of plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
            forward: None,
            limits: ClientLimits::default(),
            tls: None,
        }
    }
}

/// The ingress's worker threads: each owns a current-thread runtime. They start idle so
/// that other work (a service, when everything shares one core) can be placed on a worker's
/// runtime before serving begins.
pub struct Ingress {
    addr: Option<SocketAddr>,
    workers: Vec<Worker>,
}

struct Worker {
    handle: tokio::runtime::Handle,
    job: Option<tokio::sync::oneshot::Sender<Job>>,
    drained: Option<std::sync::mpsc::Receiver<bool>>,
    close: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a worker serves once told to.
struct Job {
    listener: std::net::TcpListener,
    router: Arc<Deployed>,
    stop: watch::Receiver<bool>,
    options: ServeOptions,
    /// Shared by every worker: the connection limits are the host's.
    gate: Arc<Gate>,
    /// With several workers and plain HTTP: the other workers, and this one's inbox of
    /// connections they hand over (`steer.rs`).
    steer: Option<(Steering, mpsc::UnboundedReceiver<Handoff>)>,
}

impl Ingress {
    /// Starts `threads` idle workers.
    pub fn workers(threads: usize) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (job_tx, job_rx) = tokio::sync::oneshot::channel::<Job>();
            let (drained_tx, drained_rx) = std::sync::mpsc::channel();
            let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("hearth-http-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let mut close_rx = close_rx;
                        tokio::select! {
                            job = job_rx => {
                                if let Ok(job) = job {
                                    let drained = run_job(job).await;
                                    let _ = drained_tx.send(drained);
                                }
                            }
                            _ = &mut close_rx => return,
                        }
                        // Keep the runtime (and whatever else lives on it) until closed.
                        let _ = close_rx.await;
                    });
                })?;
            workers.push(Worker {
                handle,
                job: Some(job_tx),
                drained: Some(drained_rx),
                close: Some(close_tx),
                thread: Some(thread),
            });
        }
        Ok(Self {
            addr: None,
            workers,
        })
    }

    /// The runtime of worker `i` (modulo the number of workers).
    pub fn handle(&self, i: usize) -> tokio::runtime::Handle {
        self.workers[i % self.workers.len()].handle.clone()
    }

    /// Every worker's runtime, in order.
    pub fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.workers.iter().map(|w| w.handle.clone()).collect()
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Binds `addr` once per worker (`SO_REUSEPORT`; port 0 picks one port for all) and
    /// starts serving `router` until `stop` turns true. Returns the bound address.
    pub fn serve(
        &mut self,
        addr: SocketAddr,
        router: Arc<Deployed>,
        stop: watch::Receiver<bool>,
        options: ServeOptions,
    ) -> std::io::Result<SocketAddr> {
        let first = reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.workers.len() {
            listeners.push(reuseport_listener(addr)?);
        }
        let gate = Gate::new(&options.limits);
        let steered = self.workers.len() > 1 && options.tls.is_none();
        let (inboxes, mut inboxes_rx): (Vec<_>, Vec<_>) = (0..self.workers.len())
            .filter(|_| steered)
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let inboxes: Arc<[mpsc::UnboundedSender<Handoff>]> = inboxes.into();
        inboxes_rx.reverse();
        for (me, (worker, listener)) in self.workers.iter_mut().zip(listeners).enumerate() {
            let steer = inboxes_rx.pop().map(|inbox| {
                let steering = Steering {
                    me,
                    inboxes: Arc::clone(&inboxes),
                };
                (steering, inbox)
            });
            if let Some(job) = worker.job.take() {
                let _ = job.send(Job {
                    listener,
                    router: Arc::clone(&router),
                    stop: stop.clone(),
                    options: options.clone(),
                    gate: Arc::clone(&gate),
                    steer,
                });
            }
        }
        self.addr = Some(addr);
        Ok(addr)
    }

    /// The bound address, once serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Blocks until every worker has drained; true when all did within the timeout.
    pub fn wait_drained(&mut self) -> bool {
        // Wait for every worker, even after one reports a timeout.
        let mut all = true;
        for rx in self.workers.iter_mut().filter_map(|w| w.drained.take()) {
            all &= rx.recv().unwrap_or(false);
        }
        all
    }

    /// Ends the workers' runtimes (and anything still placed on them) and joins the threads.
    pub fn close(mut self) {
        for w in &mut self.workers {
            if let Some(close) = w.close.take() {
                let _ = close.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

async fn run_job(job: Job) -> bool {
    let listener = match TcpListener::from_std(job.listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the ingress listener");
            return false;
        }
    };
    let mut stop = job.stop;
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    serve_gated(
        listener,
        job.router,
        shutdown,
        job.options,
        job.gate,
        job.steer,
    )
    .await
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The next connection on `listener`. A failed accept (typically EMFILE) is logged and
/// retried after a short pause instead of spinning.
pub(crate) async fn accept(
    listener: &TcpListener,
    what: &str,
) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(e) => {
                tracing::warn!(error = %e, listener = what, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
/// Returns whether every connection finished within the drain timeout.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Deployed>,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) -> bool {
    let gate = Gate::new(&options.limits);
    serve_gated(listener, router, shutdown, options, gate, None).await
}

/// Serves one connection over `io` as the ingress serves an accepted one (the limits, the
/// watchdog, routing), without TLS: for callers that own the transport, such as the fuzz
/// harness, which feeds it raw bytes. Returns when the connection ends.
pub async fn serve_io<I>(io: I, router: Arc<Deployed>, options: &ServeOptions)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Shared::new(router, options);
    let graceful = GracefulShutdown::new();
    let peer = SocketAddr::from(([127, 0, 0, 1], 0));
    connection(
        io,
        Vec::new(),
        false,
        false,
        shared,
        graceful.watcher(),
        peer,
    )
    .await;
}

/// What every connection of one listener shares.
struct Shared {
    router: Arc<Deployed>,
    forward: Option<Arc<dyn Forward>>,
    builder: auto::Builder<TokioExecutor>,
    timeouts: Timeouts,
    /// The longest request head a client may send.
    max_head: usize,
}

impl Shared {
    fn new(router: Arc<Deployed>, options: &ServeOptions) -> Arc<Self> {
        let limits = &options.limits;
        Arc::new(Self {
            router,
            forward: options.forward.clone(),
            builder: builder(limits),
            timeouts: Timeouts {
                header: limits.header_timeout,
                idle: limits.idle_timeout,
            },
            max_head: limits.max_header_bytes,
        })
    }
}

async fn serve_gated(
    listener: TcpListener,
    router: Arc<Deployed>,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
    gate: Arc<Gate>,
    steer: Option<(Steering, mpsc::UnboundedReceiver<Handoff>)>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let shared = Shared::new(router, &options);
    let acceptor = options.tls.as_ref().map(|tls| tls.acceptor());
    let (steering, mut inbox) = steer.unzip();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            conn = accept(&listener, "ingress") => conn,
            handoff = handed_over(&mut inbox) => {
                serve_handed_over(handoff, Arc::clone(&shared), graceful.watcher());
                continue;
            }
            () = &mut shutdown => break,
        };
        let admitted = match gate.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(why) => {
                tracing::debug!(%peer, ?why, open = gate.open(), "connection refused");
                if acceptor.is_none() {
                    // Best effort: the socket's buffer takes a few hundred bytes at once.
                    let _ = stream.try_write(limits::refusal(why));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        // Only while some workload has a home worker is a first head worth reading here.
        let steering = steering.clone().filter(|_| shared.router.any_homed());
        tokio::spawn(async move {
            if let Some(acceptor) = acceptor {
                let _admitted = admitted;
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(shared.timeouts.header, handshake).await {
                    Ok(Ok(stream)) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        connection(stream, Vec::new(), true, h2, shared, watcher, peer).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
                return;
            }
            let Some(steering) = steering else {
                let _admitted = admitted;
                return connection(stream, Vec::new(), false, false, shared, watcher, peer).await;
            };
            let limits = (shared.timeouts.header, shared.max_head);
            match steering
                .steer(stream, peer, admitted, &shared.router, limits)
                .await
            {
                Steered::Here {
                    stream,
                    head,
                    admitted,
                } => {
                    let _admitted = admitted;
                    connection(stream, head, false, false, shared, watcher, peer).await;
                }
                Steered::Away => {}
                Steered::TimedOut => tracing::debug!(%peer, "first request head timed out"),
            }
        });
    }
    drop(listener);
    tracing::info!("ingress stopped accepting; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {
            tracing::info!("ingress drained");
            true
        }
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(timeout_s = options.drain_timeout.as_secs(), "drain timed out; closing remaining connections");
            false
        }
    }
}

/// The next connection another worker hands over; never, without an inbox.
async fn handed_over(inbox: &mut Option<mpsc::UnboundedReceiver<Handoff>>) -> Handoff {
    match inbox {
        Some(rx) => match rx.recv().await {
            Some(handoff) => handoff,
            // Every worker holds a sender, its own too: not before the runtime ends.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Serves a connection another worker accepted, from the bytes it read on.
fn serve_handed_over(handoff: Handoff, shared: Arc<Shared>, watcher: Watcher) {
    let Handoff {
        stream,
        head,
        peer,
        admitted,
    } = handoff;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot take over a steered connection");
            return;
        }
    };
    tokio::spawn(async move {
        let _admitted = admitted;
        connection(stream, head, false, false, shared, watcher, peer).await;
    });
}

/// The HTTP/1.1 and HTTP/2 server settings `limits` asks for.
fn builder(limits: &ClientLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF));
    if limits.max_headers != HYPER_MAX_HEADERS {
        builder.http1().max_headers(limits.max_headers);
    }
    builder
        .http2()
        .max_concurrent_streams(limits.max_h2_streams)
        .max_pending_accept_reset_streams(limits.max_h2_pending_resets)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves one accepted (and, for HTTPS, handshaken) connection under the watchdog, from
/// `ahead` (what was read of it already) on.
async fn connection<I>(
    io: I,
    ahead: Vec<u8>,
    secure: bool,
    h2: bool,
    shared: Arc<Shared>,
    watcher: Watcher,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = ConnState::new();
    let io = Watched::new(io, Arc::clone(&state), shared.timeouts, h2).read_ahead(ahead);
    let service_shared = Arc::clone(&shared);
    let service = service_fn(move |mut req: Request<Incoming>| {
        let in_flight = state.begin();
        let framed_twice = state.framed_twice();
        let shared = Arc::clone(&service_shared);
        async move {
            let resp = if framed_twice {
                responses::framed_twice()
            } else {
                if secure {
                    req.extensions_mut().insert(hearth_runtime::Https);
                }
                handle(&shared.router, shared.forward.as_deref(), req).await
            };
            Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_flight)))
        }
    });
    let conn = shared
        .builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn handle(
    router: &Deployed,
    forward: Option<&dyn Forward>,
    req: Request<Incoming>,
) -> Response<OutgoingBody> {
    let host = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let Some(target) = router.lookup(host, req.uri().path()) else {
        return match forward {
            Some(forward) => forward::forward(forward, req).await,
            None => responses::not_found(),
        };
    };
    match target.handle_http(req).await {
        Ok(resp) => resp,
        Err(e) => responses::for_error(&e),
    }
}
