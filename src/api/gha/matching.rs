//! Which entry a lookup restores, and what keys and versions are accepted.
//!
//! Per namespace (in the token's order): the version must match exactly;
//! first the primary key exactly, then the primary key as a prefix, then each
//! restore key as a prefix, in order. Among prefix matches the newest entry
//! wins — BuildKit saves its index as `<index>#1`, `<index>#2`, … and loads
//! the latest by the prefix `<index>#`.

use super::error::GhaError;
use super::Target;
use crate::backend::Backend;
use crate::cache::{EntryKey, EntryRecord, Protocol, StoreError};

pub const MAX_KEY_CHARS: usize = 512;
pub const MAX_KEYS: usize = 10;
const MAX_VERSION_CHARS: usize = 512;

impl Target {
    /// The entry this target names: `<version>/<key>`, so that the entries
    /// of one version sort by key and a key prefix is a name prefix.
    pub fn entry_key(&self) -> EntryKey {
        EntryKey {
            protocol: Protocol::Gha,
            namespace: self.namespace.clone(),
            name: format!("{}/{}", self.version, self.key),
        }
    }

    /// A target with a checked key and version.
    pub fn new(namespace: &str, version: &str, key: &str) -> Result<Target, GhaError> {
        check_version(version)?;
        check_key(key)?;
        Ok(Target {
            namespace: namespace.to_owned(),
            version: version.to_owned(),
            key: key.to_owned(),
        })
    }
}

pub fn check_key(key: &str) -> Result<(), GhaError> {
    if key.is_empty() {
        return Err(GhaError::bad_request("a cache key must not be empty"));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(GhaError::bad_request(format!(
            "cache key {:?}… is longer than {MAX_KEY_CHARS} characters",
            key.chars().take(40).collect::<String>()
        )));
    }
    if key.contains(',') {
        return Err(GhaError::bad_request(format!(
            "cache key {key:?} contains a comma, which separates keys"
        )));
    }
    Ok(())
}

pub fn check_version(version: &str) -> Result<(), GhaError> {
    if version.is_empty() {
        return Err(GhaError::bad_request("the cache version is required"));
    }
    if version.chars().count() > MAX_VERSION_CHARS || version.contains('/') {
        return Err(GhaError::bad_request(format!(
            "cache version must be at most {MAX_VERSION_CHARS} characters without '/'"
        )));
    }
    Ok(())
}

/// A lookup's keys, primary first, each once: BuildKit's v2 client repeats
/// the primary key among the restore keys, which must not count twice
/// against the limit.
pub fn lookup_keys(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for key in keys {
        if !distinct.contains(&key) {
            distinct.push(key);
        }
    }
    distinct
}

/// Checks a lookup's keys (primary first) and version.
pub fn check_lookup(keys: &[String], version: &str) -> Result<(), GhaError> {
    if keys.is_empty() {
        return Err(GhaError::bad_request("at least one cache key is required"));
    }
    if keys.len() > MAX_KEYS {
        return Err(GhaError::bad_request(format!(
            "at most {MAX_KEYS} keys may be looked up at once, not {}",
            keys.len()
        )));
    }
    check_version(version)?;
    keys.iter().try_for_each(|k| check_key(k))
}

/// What a lookup found.
pub struct Hit {
    pub namespace: String,
    pub key: String,
    pub entry: EntryRecord,
}

/// Finds the entry to restore for `keys` (primary first) and `version`,
/// searching `namespaces` in order. Keys and version are already checked.
pub async fn find(
    store: &Backend,
    namespaces: &[String],
    version: &str,
    keys: &[String],
) -> Result<Option<Hit>, StoreError> {
    let hit = |namespace: &str, entry: EntryRecord| {
        let key = entry
            .key
            .name
            .strip_prefix(&format!("{version}/"))
            .unwrap_or_default()
            .to_owned();
        Hit {
            namespace: namespace.to_owned(),
            key,
            entry,
        }
    };
    let Some(primary) = keys.first() else {
        return Ok(None);
    };
    for ns in namespaces {
        let exact = Target {
            namespace: ns.clone(),
            version: version.to_owned(),
            key: primary.clone(),
        };
        if let Some(entry) = store.entry(&exact.entry_key()).await? {
            return Ok(Some(hit(ns, entry)));
        }
        for key in keys {
            let prefix = format!("{version}/{key}");
            let newest = store
                .entries_with_prefix(Protocol::Gha, ns, &prefix)
                .await?
                .into_iter()
                .max_by_key(|e| (e.created, e.id));
            if let Some(entry) = newest {
                return Ok(Some(hit(ns, entry)));
            }
        }
    }
    Ok(None)
}
