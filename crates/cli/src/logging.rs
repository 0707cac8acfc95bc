//! Host logging through `tracing`: human-readable by default, JSON lines on request.
//! `RUST_LOG` overrides the default filter. Guest lines (target `guest`: stdout, stderr,
//! `wasi:logging`) also go to the log hub `hearth logs` reads, whatever the filter.

use hearth_runtime::logs;
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::AsLog;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, filter};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

pub fn init(format: LogFormat) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    // The `log` records of dependencies (wasmtime logs at `trace` inside every instantiation)
    // are bridged only up to the most verbose level the filter could let through: below that
    // `log`'s own level check drops them, where a bridge at `trace` would build and filter
    // each one (13 % of a hello request's instructions, BENCHMARKS.md).
    let bridged = env
        .max_level_hint()
        .map_or(log::LevelFilter::Trace, |level| level.as_log());
    // A static target filter, so that every other event's callsite is decided once.
    let guests = GuestLines.with_filter(filter::Targets::new().with_target("guest", Level::TRACE));
    let subscriber = tracing_subscriber::registry()
        .with(fmt.with_filter(env))
        .with(guests);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(bridged)
            .init();
    }
}

/// Feeds guest lines into the log hub.
struct GuestLines;

impl<S: Subscriber> Layer<S> for GuestLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = GuestFields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let text = match fields.context.as_deref() {
            Some(context) if !context.is_empty() => format!("[{context}] {}", fields.message),
            _ => fields.message,
        };
        logs::hub().push(
            &fields.workload,
            &fields.component,
            fields.stream.as_deref().unwrap_or("log"),
            &level,
            &text,
        );
    }
}

#[derive(Default)]
struct GuestFields {
    workload: String,
    component: String,
    stream: Option<String>,
    context: Option<String>,
    message: String,
}

impl Visit for GuestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "workload" => self.workload = value.to_string(),
            "component" => self.component = value.to_string(),
            "stream" => self.stream = Some(value.to_string()),
            "context" => self.context = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "context" => self.context = Some(format!("{value:?}")),
            _ => {}
        }
    }
}
