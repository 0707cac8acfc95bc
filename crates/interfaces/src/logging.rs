//! `wasi:logging/logging`: a guest's log records, emitted into the host's `tracing` output with
//! the workload, the part (component or service), the guest's context and its level.
//! There is one backend: `tracing`. `critical` is logged at `error` with `critical = true`.

use crate::bindings::logging::logging::{self, Level};
use crate::{Declared, FieldError, InterfacesView};

pub(crate) const PACKAGE: &str = "wasi:logging";
pub(crate) const BACKENDS: &[&str] = &["tracing"];

pub(crate) fn check(d: Declared<'_>) -> Result<(), FieldError> {
    if !BACKENDS.contains(&d.spec.backend.as_str()) {
        return Err(d.unknown_backend(BACKENDS));
    }
    d.config().finish(&[])
}

/// Longest message forwarded; the rest is cut and marked, so one guest cannot flood the log.
const MAX_MESSAGE: usize = 16 * 1024;

impl logging::Host for InterfacesView<'_> {
    async fn log(
        &mut self,
        level: Level,
        context: String,
        mut message: String,
    ) -> wasmtime::Result<()> {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        let part = &self.ctx.part;
        let (workload, component) = (&*part.workload, &*part.part);
        macro_rules! emit {
            ($level:expr $(, $extra:ident = $value:expr)?) => {
                tracing::event!(
                    target: "guest",
                    $level,
                    workload,
                    component,
                    context = %context,
                    $($extra = $value,)?
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
            Level::Critical => emit!(tracing::Level::ERROR, critical = true),
        }
        Ok(())
    }
}
