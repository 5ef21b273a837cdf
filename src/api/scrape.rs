//! `GET /metrics` on the main address: open by default, or, with
//! `metrics.require_token`, only for an admin token or one with the metrics
//! permission. The separate `metrics.listen` address serves the exposition
//! without this check: it is guarded by who the network lets reach it.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::Denied;

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics.require_token {
        let allowed = state
            .auth
            .caller(&headers)
            .and_then(|c| state.auth.require_metrics(&c));
        if let Err(denied) = allowed {
            return refusal(&denied);
        }
    }
    super::observe::metrics(State(state)).await
}

/// A scraper reads status and text: 401 with a Bearer challenge when the
/// caller is not identified, 403 when its token lacks the permission.
fn refusal(denied: &Denied) -> Response {
    let status = match denied {
        Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
    };
    let mut res = (status, format!("{}\n", denied.message())).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"larder-metrics\""),
        );
    }
    res
}
