//! Callers of the admin API's namespace views (namespaces, entries, purge):
//! an admin sees and manages everything; any other token sees the
//! namespaces it may read and changes only those it may write. Server-wide
//! numbers (stats, history, workers) and tokens stay admin-only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Json;
use serde_json::{json, Value};

use super::AdminError;
use crate::api::AppState;
use crate::auth::{Caller, Denied, ANY_NAMESPACE, READ, WRITE};

pub struct Viewer {
    caller: Caller,
    pub admin: bool,
    auth: std::sync::Arc<crate::auth::Auth>,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.auth.caller(&parts.headers)?;
        let admin = match state.auth.require_admin(&caller) {
            Ok(()) => true,
            // A token that reads nothing has nothing to see here, and a
            // legacy admin token limited to some namespaces stays refused
            // with the reason (see `Auth::require_admin`).
            Err(denied) => match &caller {
                Caller::Token(c)
                    if !c.larder_admin && c.grants().iter().any(|g| g.permission & READ != 0) =>
                {
                    false
                }
                _ => return Err(denied.into()),
            },
        };
        Ok(Viewer {
            caller,
            admin,
            auth: state.auth.clone(),
        })
    }
}

impl Viewer {
    pub fn may_read(&self, namespace: &str) -> bool {
        self.admin || self.auth.permission(&self.caller, namespace) & READ != 0
    }

    /// Refuses a change to `namespace` unless the caller may write to it.
    pub fn require_write(&self, namespace: &str) -> Result<(), AdminError> {
        if self.admin || self.auth.permission(&self.caller, namespace) & WRITE != 0 {
            return Ok(());
        }
        Err(Denied::Forbidden(format!(
            "token {:?} may not change namespace {namespace:?}",
            self.caller.subject()
        ))
        .into())
    }

    /// The namespaces this caller's token names (`*` for every one), with
    /// what it may do in each; an admin's is `*` with everything.
    fn scopes(&self) -> Vec<Value> {
        match &self.caller {
            Caller::Token(c) if !self.admin => c
                .grants()
                .iter()
                .map(|g| {
                    json!({
                        "namespace": g.scope,
                        "read": g.permission & READ != 0,
                        "write": g.permission & WRITE != 0,
                    })
                })
                .collect(),
            _ => vec![json!({ "namespace": ANY_NAMESPACE, "read": true, "write": true })],
        }
    }
}

/// `GET whoami`: what the dashboard may show this caller.
pub async fn whoami(viewer: Viewer) -> Json<Value> {
    Json(json!({
        "subject": viewer.caller.subject(),
        "admin": viewer.admin,
        "namespaces": viewer.scopes(),
    }))
}
