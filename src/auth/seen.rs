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

impl Seen {
    /// The first namespace the request was allowed on, if any.
    pub fn allowed_namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|_| self.namespace_allowed)
    }
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
        let slot = Slot::default();
        let before = scope(slot.clone(), async {
            namespace("refused", false);
            SEEN.with(|s| s.lock().allowed_namespace().map(str::to_owned))
        })
        .await;
        scope(slot.clone(), async { namespace("team-a", true) }).await;
        assert_eq!(before, None);
        assert_eq!(slot.lock().allowed_namespace(), Some("team-a"));
    }

    #[test]
    fn outside_a_scope_nothing_happens() {
        token("x");
        namespace("y", true);
    }
}
