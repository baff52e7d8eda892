//! The W3C trace context (`traceparent`) carried with work that leaves the
//! span that created it: node work items, Task Agent tasks, pub/sub
//! messages (in process and over NATS). The creator records
//! [`current`]; whoever runs the work makes it the parent of its span with
//! [`adopt`], so one trace shows the work end to end across processes.
//! Without the `otel` feature there is no context to carry: the functions
//! return nothing and change nothing.

/// The name of the pub/sub message header (and NATS header) that carries
/// the W3C trace context.
pub const HEADER: &str = "traceparent";

/// The `traceparent` of the current span, when it belongs to an exported
/// trace.
pub fn current() -> Option<String> {
    traceparent(&tracing::Span::current())
}

/// The `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`), when it
/// belongs to an exported trace.
#[cfg(feature = "otel")]
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes the remote span that `traceparent` names the parent of `span`; a
/// value that does not parse is ignored (the span starts its own trace).
#[cfg(feature = "otel")]
pub fn adopt(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut parts = traceparent.trim().split('-');
    let (Some("00"), Some(trace), Some(id), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return;
    };
    let (Ok(trace), Ok(id), Ok(flags)) = (
        TraceId::from_hex(trace),
        SpanId::from_hex(id),
        u8::from_str_radix(flags, 16),
    ) else {
        return;
    };
    let sc = SpanContext::new(
        trace,
        id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    if sc.is_valid() {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

/// The `traceparent` of `span`; without the `otel` feature there is no
/// trace to carry: always `None`.
#[cfg(not(feature = "otel"))]
pub fn traceparent(_span: &tracing::Span) -> Option<String> {
    None
}

/// Makes the span `traceparent` names the parent of `span`; without the
/// `otel` feature there is no trace to join: does nothing.
#[cfg(not(feature = "otel"))]
pub fn adopt(_span: &tracing::Span, _traceparent: &str) {}
