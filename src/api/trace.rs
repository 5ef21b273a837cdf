//! One span per request: method, route template, status, latency, bytes.
//! Route templates (not raw paths) keep digests and tokens out of the logs.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

use super::observe::RouteTemplate;

#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("unmatched");
        let bytes_in = content_length(req.headers());
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            route = tracing::field::Empty,
            bytes_in,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            bytes_out = tracing::field::Empty,
        );
        // A wildcard route (the OCI API, the HTTP caches) names its precise
        // template in the response (`RouteTemplate`), recorded below.
        if !route.contains("{*") {
            span.record("route", route);
        }
        span
    }
}

#[derive(Clone, Copy)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, res: &Response<B>, latency: Duration, span: &Span) {
        let status = res.status().as_u16();
        if let Some(t) = res.extensions().get::<RouteTemplate>() {
            span.record("route", t.0);
        }
        span.record("status", status);
        span.record("latency_ms", (latency.as_secs_f64() * 1e6).round() / 1e3);
        span.record("bytes_out", content_length(res.headers()));
        if res.status().is_server_error() {
            tracing::warn!(status, "request failed");
        } else {
            tracing::info!(status, "request done");
        }
    }
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    super::content_length(headers).unwrap_or(0)
}

pub type Layer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), LogResponse, (), (), ()>;

pub fn layer() -> Layer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(LogResponse)
        .on_body_chunk(())
        .on_eos(())
        // `LogResponse` already reports 5xx; a second, louder line would
        // turn an expected 507 into an alarm.
        .on_failure(())
}
