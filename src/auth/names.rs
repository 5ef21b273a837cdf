//! The names a client or operator chooses for the auth model — namespaces
//! and token names — checked where they enter (the admin API, `larder token
//! create`), so that nothing later stores, lists or purges a name no
//! protocol could have written.

use super::token::{TokenSpec, ANY_NAMESPACE};

/// Longest namespace (bytes), as the HTTP caches accept it.
pub const MAX_NAMESPACE_LEN: usize = 128;
/// Most namespaces one token may name. A token travels in every request's
/// headers: hundreds of namespaces would outgrow what proxies accept.
pub const MAX_TOKEN_NAMESPACES: usize = 64;
/// Longest token name (its subject, shown in logs and listings).
pub const MAX_TOKEN_NAME_LEN: usize = 128;

/// A namespace: 1 to 128 bytes of `A-Z a-z 0-9 . _ -`, starting with a
/// letter or digit — the rule of the HTTP caches, which OCI's (lowercase
/// repository components) and every other protocol's namespaces satisfy.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if ns.is_empty() {
        return Err("a namespace must not be empty".into());
    }
    if ns.len() > MAX_NAMESPACE_LEN {
        return Err(format!("a namespace has at most {MAX_NAMESPACE_LEN} bytes"));
    }
    if let Some(c) = ns
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "namespace {ns:?} contains {c:?}; only A-Z a-z 0-9 . _ - are allowed"
        ));
    }
    if !ns.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "namespace {ns:?} must start with a letter or a digit"
        ));
    }
    Ok(())
}

/// What a new token may say: valid namespaces (or `*`), a bounded list, a
/// printable name — and an admin token manages every namespace, so it must
/// name `*` alone rather than suggest a scope it would not have.
/// The grants of a new token: `read`/`write` on each namespace, and the
/// metrics permission on `*`, which must then be among them.
pub fn grants(
    namespaces: &[String],
    read: bool,
    write: bool,
    metrics: bool,
) -> Result<Vec<super::Grant>, String> {
    use super::{METRICS, READ, WRITE};
    if metrics && !namespaces.iter().any(|n| n == ANY_NAMESPACE) {
        return Err(
            "the metrics permission covers the whole server (every namespace's usage and \
             traffic): add the namespace *"
                .into(),
        );
    }
    let bits = (if read { READ } else { 0 }) | (if write { WRITE } else { 0 });
    Ok(namespaces
        .iter()
        .map(|ns| super::Grant {
            scope: ns.clone(),
            permission: bits
                | if metrics && ns == ANY_NAMESPACE {
                    METRICS
                } else {
                    0
                },
        })
        .collect())
}

pub fn check_token_spec(spec: &TokenSpec) -> Result<(), String> {
    if spec.grants.is_empty() {
        return Err("name at least one namespace (or * for every namespace)".into());
    }
    if spec.grants.len() > MAX_TOKEN_NAMESPACES {
        return Err(format!(
            "a token names at most {MAX_TOKEN_NAMESPACES} namespaces; use * for every namespace"
        ));
    }
    for g in &spec.grants {
        if g.scope != ANY_NAMESPACE {
            check_namespace(&g.scope)?;
        }
    }
    if spec
        .grants
        .iter()
        .any(|g| g.permission & super::METRICS != 0 && g.scope != ANY_NAMESPACE)
    {
        return Err(
            "the metrics permission covers the whole server (every namespace's usage and \
             traffic), so it is granted on the namespace * only"
                .into(),
        );
    }
    let everywhere = spec.grants.iter().any(|g| g.scope == ANY_NAMESPACE);
    if spec.admin && !(everywhere && spec.grants.len() == 1) {
        return Err(
            "an admin token manages every namespace (it can list, purge and mint tokens for \
             all of them), so it cannot be limited to some: create it with the namespace * \
             alone, and give per-namespace read/write tokens to teams"
                .into(),
        );
    }
    let name = &spec.subject;
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_LEN || name.chars().any(char::is_control) {
        return Err(format!(
            "a token name has 1 to {MAX_TOKEN_NAME_LEN} bytes and no control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grant;

    fn spec(scopes: &[&str], admin: bool) -> TokenSpec {
        TokenSpec {
            subject: "ci".into(),
            grants: scopes
                .iter()
                .map(|s| Grant {
                    scope: (*s).into(),
                    permission: 1,
                })
                .collect(),
            admin,
            ttl_secs: 60,
            parent: None,
        }
    }

    #[test]
    fn namespaces_are_one_safe_segment() {
        for ok in ["team-a", "A1", "x", "a.b_c-d", &"n".repeat(128)] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../..",
            "a/b",
            "\0",
            "-a",
            ".a",
            "a b",
            "é",
            "a%2f",
            &"n".repeat(129),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn admin_tokens_name_every_namespace_or_are_refused() {
        assert!(check_token_spec(&spec(&["*"], true)).is_ok());
        assert!(check_token_spec(&spec(&["team-a", "team-b"], false)).is_ok());
        assert!(check_token_spec(&spec(&["team-a"], true)).is_err());
        assert!(check_token_spec(&spec(&["*", "team-a"], true)).is_err());
        assert!(check_token_spec(&spec(&[], false)).is_err());
        assert!(check_token_spec(&spec(&["../x"], false)).is_err());
        let many: Vec<String> = (0..=MAX_TOKEN_NAMESPACES)
            .map(|i| format!("t{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(check_token_spec(&spec(&many, false)).is_err());
        let mut named = spec(&["team-a"], false);
        named.subject = "bad\nname".into();
        assert!(check_token_spec(&named).is_err());
    }
}
