//! Diagnostics on stderr: which events (`RUST_LOG`, or its alias
//! `DAGGER_LOG`, in `EnvFilter` syntax; `warn` when neither is set), in
//! which format (`--log-format text|json`), with colours only when stderr
//! is a terminal and `NO_COLOR` is unset or empty. With the `otel` feature
//! and `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! set, spans at info level and above are also exported over OTLP/HTTP,
//! whatever `RUST_LOG` says.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log events are written on stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// One line per event for people.
    #[default]
    Text,
    /// One JSON object per line for machines (`timestamp`, `level`,
    /// `target`, `message`, the event's fields, and `span`).
    Json,
}

/// The filter: `DAGGER_LOG` if set, else `RUST_LOG`, else `warn`. A
/// variable that does not parse is reported and the default used.
fn filter() -> EnvFilter {
    for var in ["DAGGER_LOG", "RUST_LOG"] {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
                Ok(f) => return f,
                Err(e) => {
                    errln!("warning: ignoring {var}={v}: {e}");
                    break;
                }
            },
            _ => {}
        }
    }
    EnvFilter::new("warn")
}

/// Whether escapes may colour the output: stderr is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>).
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The trace exporter, flushed and shut down when dropped.
pub(crate) struct Traces {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Traces {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            errln!("warning: cannot flush the traces: {e}");
        }
    }
}

/// The OTLP exporter's layer, when an endpoint is configured.
#[cfg(feature = "otel")]
fn otel<S>() -> Option<(impl Layer<S>, opentelemetry_sdk::trace::SdkTracerProvider)>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let set = |v: &str| std::env::var(v).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return None;
    }
    // The endpoint, headers and timeout come from the standard variables.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            errln!("warning: traces are not exported: {e}");
            return None;
        }
    };
    // `service.name` from OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES), else `dagger`.
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "dagger".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("dagger"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    Some((layer, provider))
}

/// Installs the process's subscriber (a second call in one process, as in
/// tests, keeps the first); the guard flushes the exported traces.
pub(crate) fn init(format: LogFormat) -> Traces {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colours())
        // A closed stderr drops log lines; it must not print (or panic) about it.
        .log_internal_errors(false);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let fmt = fmt.with_filter(filter());
    #[cfg(feature = "otel")]
    {
        let (layer, provider) = otel().unzip();
        let installed = tracing_subscriber::registry()
            .with(fmt)
            .with(layer)
            .try_init()
            .is_ok();
        Traces {
            provider: provider.filter(|_| installed),
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        Traces {}
    }
}
