//! OpenTelemetry spans for what the host does on a guest's behalf: an HTTP request
//! ([`http_request`]), a WIT call from one part to another ([`call`] on the caller's side,
//! [`invocation`] on the callee's), a message delivery ([`invocation`]) and an outgoing
//! `wasi:http` request ([`outgoing`]), which carries the W3C `traceparent` of its span so the
//! next hop continues the trace.
//!
//! Off unless the process [`install`]s a tracer (`--otlp-endpoint`): every entry point then
//! returns `None` after one load, and nothing else is done on the request path.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use std::sync::{Arc, OnceLock};

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Turns tracing on for the process, with spans going to `tracer`. Only the first call counts.
pub fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// What a store knows for tracing: the part it runs and the span its guest works within
/// (none for a service, whose calls and requests start traces of their own).
#[derive(Clone)]
pub(crate) struct StoreTrace {
    pub part: Arc<str>,
    pub context: Option<Context>,
}

impl StoreTrace {
    /// For a new store of `part`, when tracing is on.
    pub(crate) fn new(part: &Arc<str>) -> Option<Self> {
        tracer()?;
        Some(Self {
            part: Arc::clone(part),
            context: None,
        })
    }

    /// The context a child span starts from: the store's span, or a new trace.
    fn parent(&self) -> Context {
        self.context.clone().unwrap_or_default()
    }
}

/// One span in progress; ended (once) by [`Span::end`] or when dropped.
pub(crate) struct Span(Context);

impl Span {
    fn start(
        tracer: &SdkTracer,
        name: String,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> Self {
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        Span(parent.with_span(span))
    }

    /// The context children of this span start from.
    pub(crate) fn context(&self) -> &Context {
        &self.0
    }

    /// Adds an attribute.
    pub(crate) fn set(&self, key: &'static str, value: String) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    /// Ends the span, as an error when `error` says why.
    pub(crate) fn end(self, error: Option<String>) {
        let span = self.0.span();
        if let Some(reason) = error {
            span.set_status(Status::error(reason));
        }
        span.end();
    }

    /// Ends an HTTP span with its status code (5xx is an error, as the conventions say for
    /// servers; a client span also marks 4xx).
    pub(crate) fn end_http(self, status: u16, client: bool) {
        self.0.span().set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        let error = status >= 500 || (client && status >= 400);
        self.end(error.then(|| format!("HTTP {status}")));
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        // Ending twice is a no-op; a span whose future was dropped still gets exported.
        self.0.span().end();
    }
}

/// A server span for an incoming HTTP request to `component`, continuing the request's
/// `traceparent` when it has a valid one.
pub(crate) fn http_request<B>(
    req: &http::Request<B>,
    workload: &str,
    component: &str,
    route: Option<&str>,
) -> Option<Span> {
    let tracer = tracer()?;
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    let method = req.method().as_str().to_string();
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("url.path", req.uri().path().to_string()),
        KeyValue::new("hearth.workload", workload.to_string()),
        KeyValue::new("hearth.component", component.to_string()),
    ];
    let name = match route {
        Some(route) => {
            attributes.push(KeyValue::new("http.route", route.to_string()));
            format!("{method} {route}")
        }
        None => method,
    };
    Some(Span::start(
        tracer,
        name,
        SpanKind::Server,
        &parent,
        attributes,
    ))
}

/// The caller's span of a WIT call from the part `caller` runs to `interface`.`func`.
pub(crate) fn call(caller: &StoreTrace, interface: &str, func: &str) -> Option<Span> {
    let tracer = tracer()?;
    Some(Span::start(
        tracer,
        format!("call {interface}.{func}"),
        SpanKind::Client,
        &caller.parent(),
        vec![
            KeyValue::new("hearth.caller", caller.part.to_string()),
            KeyValue::new("rpc.method", format!("{interface}.{func}")),
        ],
    ))
}

/// The span of one invocation of `component` that is not an HTTP request: a linked call
/// (`parent` is the caller's call span) or a message delivery (a new trace).
pub(crate) fn invocation(
    parent: Option<&Context>,
    workload: &str,
    component: &str,
    what: String,
    kind: SpanKind,
) -> Option<Span> {
    let tracer = tracer()?;
    let root = Context::new();
    Some(Span::start(
        tracer,
        what,
        kind,
        parent.unwrap_or(&root),
        vec![
            KeyValue::new("hearth.workload", workload.to_string()),
            KeyValue::new("hearth.component", component.to_string()),
        ],
    ))
}

/// A client span for an outgoing `wasi:http` request; its `traceparent` is written into the
/// request's headers (replacing any the guest set) so the server continues the trace.
pub(crate) fn outgoing<B>(store: &StoreTrace, request: &mut http::Request<B>) -> Option<Span> {
    let tracer = tracer()?;
    let uri = request.uri();
    let span = Span::start(
        tracer,
        request.method().as_str().to_string(),
        SpanKind::Client,
        &store.parent(),
        vec![
            KeyValue::new("http.request.method", request.method().as_str().to_string()),
            KeyValue::new("url.full", uri.to_string()),
            KeyValue::new("server.address", uri.host().unwrap_or("").to_string()),
            KeyValue::new("hearth.caller", store.part.to_string()),
        ],
    );
    TraceContextPropagator::new()
        .inject_context(span.context(), &mut HeaderInjector(request.headers_mut()));
    Some(span)
}
