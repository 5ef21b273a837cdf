//! What auth learned about the request in progress (which token, which
//! namespace), for its log line and its per-namespace metrics. The request log opens a slot around the
//! handler; auth fills it as it verifies. A task-local rather than a request
//! extension because auth sees only headers, and every protocol calls it.
//! Work a handler spawns onto other tasks does not see the slot: those calls
//! are simply not noted.

use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The verified token's name (its subject), never the token itself.
    pub token: Option<String>,
    /// The namespace the request acted on: the first one allowed, or, when
    /// none was, the first one asked for (so a 403 names what was refused).
    pub namespace: Option<String>,
    namespace_allowed: bool,
}

pub type Slot = Arc<Mutex<Seen>>;

tokio::task_local! {
    static SEEN: Slot;
}

/// Runs `fut` with `slot` collecting what auth sees.
pub async fn scope<F: std::future::Future>(slot: Slot, fut: F) -> F::Output {
    SEEN.scope(slot, fut).await
}

pub(super) fn token(name: &str) {
    let _ = SEEN.try_with(|s| s.lock().token = Some(name.to_owned()));
}

pub(super) fn namespace(ns: &str, allowed: bool) {
    let _ = SEEN.try_with(|s| {
        let mut s = s.lock();
        if s.namespace_allowed || (s.namespace.is_some() && !allowed) {
            return;
        }
        s.namespace = Some(ns.to_owned());
        s.namespace_allowed = allowed;
    });
}

/// The first namespace the request in progress was allowed on, if any.
pub fn allowed_namespace() -> Option<String> {
    SEEN.try_with(|s| {
        let s = s.lock();
        s.namespace.clone().filter(|_| s.namespace_allowed)
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_allowed_namespace_wins_else_first_asked() {
        let slot = Slot::default();
        scope(slot.clone(), async {
            namespace("a", false);
            namespace("b", false);
            token("ci");
        })
        .await;
        assert_eq!(slot.lock().namespace.as_deref(), Some("a"));
        assert_eq!(slot.lock().token.as_deref(), Some("ci"));
        scope(slot.clone(), async {
            namespace("c", true);
            namespace("d", true);
        })
        .await;
        assert_eq!(slot.lock().namespace.as_deref(), Some("c"));
        let allowed = scope(Slot::default(), async {
            namespace("refused", false);
            let before = allowed_namespace();
            namespace("team-a", true);
            (before, allowed_namespace())
        })
        .await;
        assert_eq!(allowed, (None, Some("team-a".to_owned())));
    }

    #[test]
    fn outside_a_scope_nothing_happens() {
        token("x");
        namespace("y", true);
    }
}
