//! OpenTelemetry traces: with `--otlp-endpoint URL` (or `OTEL_EXPORTER_OTLP_ENDPOINT`), spans go
//! to `URL/v1/traces` as OTLP protobuf over HTTP, in batches from a thread of their own (the
//! SDK's batch processor; `OTEL_BSP_*` tune it). Off without an endpoint: nothing is built.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Flushes and stops the exporter when dropped (outside any async runtime: the exporter's
/// HTTP client blocks).
pub(crate) struct Traces(Option<SdkTracerProvider>);

/// Starts exporting to `endpoint` (the collector's base URL) and turns tracing on in the
/// runtime; `host` names this process in every span's resource.
pub(crate) fn install(endpoint: Option<&str>, host: &str) -> anyhow::Result<Traces> {
    let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(Traces(None));
    };
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    // The exporter's HTTP client (reqwest, with rustls for `https://`) needs a crypto provider
    // chosen; ring, as everywhere in hearth. Already chosen is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("hearth")
                .with_attribute(KeyValue::new("host.name", host.to_string()))
                .build(),
        )
        .build();
    hearth_runtime::trace::install(provider.tracer("hearth"));
    tracing::info!(%url, "exporting traces (OTLP over HTTP)");
    Ok(Traces(Some(provider)))
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "traces not all exported at exit");
        }
    }
}
