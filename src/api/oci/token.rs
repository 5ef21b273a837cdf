//! The registry token endpoint (`/v2/token`), as docker and BuildKit use it
//! after a 401 challenge: `GET ?service=&scope=repository:<name>:pull,push`
//! with Basic credentials (the password is a Larder token), or the OAuth2
//! `POST` form with `grant_type=password`. The answer is a short-lived token
//! restricted to the granted scopes.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::path;
use super::OciError;
use crate::api::AppState;
use crate::auth::{credential, Caller, Grant, TokenSpec, READ, WRITE};

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let secret = credential(&headers);
    respond(&state, secret, &query)
}

pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = match serde_urlencoded_pairs(&body) {
        Some(f) => f,
        None => {
            return OciError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "body must be a form",
            )
            .into_response()
        }
    };
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match field("grant_type").as_deref() {
        Some("password") | None => {}
        Some(other) => {
            return OciError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!("grant_type {other:?} is not supported"),
            )
            .into_response()
        }
    }
    let secret = field("password")
        .filter(|p| !p.is_empty())
        .or_else(|| credential(&headers));
    // Scopes in the form are space-separated.
    let scopes: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .map(|s| ("scope".to_owned(), s.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    respond(&state, secret, &scopes)
}

fn serde_urlencoded_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{}", std::str::from_utf8(body).ok()?)
            .parse()
            .ok()?,
    )
    .ok()
    .map(|q| q.0)
}

fn respond(state: &AppState, secret: Option<String>, query: &[(String, String)]) -> Response {
    let auth = &state.auth;
    let caller = match secret {
        Some(t) if auth.enabled() => match auth.verify(&t) {
            Ok(c) => Caller::Token(Box::new(c)),
            Err(e) => {
                return OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", e.to_string())
                    .into_response()
            }
        },
        _ => Caller::Anonymous,
    };
    if auth.enabled() && matches!(caller, Caller::Anonymous) && auth.permission(&caller, "") == 0 {
        return OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "credentials required",
        )
        .into_response();
    }
    let mut grants: Vec<Grant> = Vec::new();
    for scope in query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
    {
        // repository:<name>:<actions>; the name may itself contain colons only
        // in a port-qualified registry name, which scopes never carry.
        let mut parts = scope.splitn(3, ':');
        let (Some("repository"), Some(name), Some(actions)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if path::validate_name(name).is_err() {
            continue;
        }
        let requested = actions.split(',').fold(0u8, |acc, a| match a {
            "pull" => acc | READ,
            "push" | "delete" => acc | WRITE,
            "*" => acc | READ | WRITE,
            _ => acc,
        });
        let ns = path::namespace(name);
        let granted = requested & auth.permission(&caller, ns);
        if granted != 0 {
            grants.push(Grant {
                scope: ns.to_owned(),
                permission: granted,
            });
        }
    }
    // Revocation of the original must reach every token exchanged from it,
    // however often it is re-exchanged: carry the root, never a middle link.
    // And an exchanged token never outlives what it was exchanged from.
    let mut ttl = state.config.auth.registry_token_ttl.0.as_secs().max(1);
    let parent = match &caller {
        Caller::Token(c) => {
            ttl = ttl.min(c.exp.saturating_sub(crate::auth::token::now_secs()).max(1));
            Some(c.parent.clone().unwrap_or_else(|| c.jti.clone()))
        }
        Caller::Anonymous => None,
    };
    let (token, claims) = auth.mint(&TokenSpec {
        subject: caller.subject().to_owned(),
        grants,
        admin: false,
        ttl_secs: ttl,
        parent,
    });
    let issued_at = crate::auth::token::rfc3339(claims.iat);
    Json(json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": issued_at,
    }))
    .into_response()
}
