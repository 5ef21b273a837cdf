//! Who may do what on the registry API, and the Docker token challenge:
//! a 401 names the token endpoint (`WWW-Authenticate: Bearer realm=…`) so
//! docker and BuildKit fetch a token there and retry.

use axum::http::{header, HeaderMap, Method, StatusCode};

use super::path::{self, Route};
use super::{AppState, OciError};
use crate::api::external_base;
use crate::auth::{Caller, Denied, READ, WRITE};

/// Authenticates the request and checks the permission its route needs.
pub fn authorize(
    state: &AppState,
    route: &Route<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, OciError> {
    let auth = &state.auth;
    let (name, needed) = match route {
        Route::Base | Route::Catalog => (None, READ),
        Route::Blob { name, .. } | Route::Manifest { name, .. }
            if matches!(*method, Method::GET | Method::HEAD) =>
        {
            (Some(*name), READ)
        }
        Route::Tags { name } | Route::Referrers { name, .. } => (Some(*name), READ),
        Route::Blob { name, .. }
        | Route::Manifest { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. } => (Some(*name), WRITE),
    };
    if !auth.enabled() {
        // Always allowed; asked all the same so that the namespace is noted
        // for the per-namespace metrics, as it is with tokens.
        if let Some(n) = name {
            let _ = auth.require(&Caller::Anonymous, path::namespace(n), needed);
        }
        return Ok(Caller::Anonymous);
    }
    let deny = |d: Denied| denial(state, headers, name, needed, d);
    let caller = auth.caller(headers).map_err(deny)?;
    match name {
        Some(n) => auth
            .require(&caller, path::namespace(n), needed)
            .map_err(deny)?,
        // `/v2/` and the catalog only need a valid identity (the catalog is
        // filtered by what the caller may read); anonymous callers are sent to
        // the token endpoint unless anonymous reads are open.
        None => {
            if matches!(caller, Caller::Anonymous) && auth.permission(&caller, "") == 0 {
                return Err(deny(Denied::Unauthenticated(
                    "authentication required".into(),
                )));
            }
        }
    }
    Ok(caller)
}

fn denial(
    state: &AppState,
    headers: &HeaderMap,
    name: Option<&str>,
    needed: u8,
    d: Denied,
) -> OciError {
    match d {
        Denied::Unauthenticated(why) => {
            let realm = format!("{}/v2/token", external_base(headers, &state.config));
            let mut challenge = format!("Bearer realm=\"{realm}\",service=\"larder\"");
            if let Some(n) = name {
                let actions = if needed & WRITE != 0 {
                    "pull,push"
                } else {
                    "pull"
                };
                challenge.push_str(&format!(",scope=\"repository:{n}:{actions}\""));
            }
            OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why)
                .header(header::WWW_AUTHENTICATE, &challenge)
        }
        Denied::Forbidden(why) => OciError::new(StatusCode::FORBIDDEN, "DENIED", why),
    }
}
