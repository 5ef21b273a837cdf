//! Listings for operators: namespaces with their usage, entries in LRU, MRU
//! or size order with cursors, and whole-namespace purges.

use serde::Serialize;

use super::{Store, StoreError};
use crate::index::{EntryRecord, Protocol};

/// One namespace as the admin API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    /// Bytes its entries pin, each blob counted once.
    pub used_bytes: u64,
    pub entries: u64,
    /// Unix milliseconds of the most recent use of any of its entries.
    pub last_used: u64,
    pub quota: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryOrder {
    /// Least recently used first (what eviction takes next).
    Lru,
    /// Most recently used first.
    Mru,
    /// Largest first.
    Size,
}

/// A page of entries and the cursor of the next page.
pub struct EntryPage {
    pub entries: Vec<EntryRecord>,
    pub next: Option<String>,
}

impl Store {
    /// Namespaces holding entries or given a quota, sorted.
    pub fn namespace_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .index
            .namespaces()?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for q in self.quotas.keys() {
            if !names.contains(q) {
                names.push(q.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn namespaces(&self) -> Result<Vec<NamespaceInfo>, StoreError> {
        let mut out = Vec::new();
        for name in self.namespace_names()? {
            let mut entries = 0;
            let mut last_used = 0;
            for id in self.index.lru_ids(Some(&name)) {
                if let Some(e) = self.index.entry(id?)? {
                    entries += 1;
                    last_used = last_used.max(e.last_used);
                }
            }
            out.push(NamespaceInfo {
                used_bytes: self.index.namespace_usage(&name)?,
                quota: self.quotas.get(&name).copied(),
                name,
                entries,
                last_used,
            });
        }
        Ok(out)
    }

    /// Entries matching the filters (namespace, protocol, name prefix),
    /// `limit` at a time. The cursor is an
    /// opaque position: an offset into the chosen order.
    pub fn list_entries(
        &self,
        namespace: Option<&str>,
        protocol: Option<Protocol>,
        prefix: Option<&str>,
        order: EntryOrder,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EntryPage, StoreError> {
        let skip: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let keep = |e: &EntryRecord| {
            protocol.is_none_or(|p| e.key.protocol == p)
                && prefix.is_none_or(|p| e.key.name.starts_with(p))
        };
        let mut matching = Vec::new();
        let mut total = 0usize;
        if order == EntryOrder::Size {
            let mut all: Vec<EntryRecord> = Vec::new();
            for id in self.index.lru_ids(namespace) {
                if let Some(e) = self.index.entry(id?)? {
                    if keep(&e) {
                        all.push(e);
                    }
                }
            }
            all.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
            total = all.len();
            matching = all.into_iter().skip(skip).take(limit).collect();
        } else {
            let ids: Vec<u64> = self.index.lru_ids(namespace).collect::<Result<_, _>>()?;
            let ordered: Box<dyn Iterator<Item = &u64>> = match order {
                EntryOrder::Mru => Box::new(ids.iter().rev()),
                _ => Box::new(ids.iter()),
            };
            for id in ordered {
                let Some(e) = self.index.entry(*id)? else {
                    continue;
                };
                if !keep(&e) {
                    continue;
                }
                if total >= skip && matching.len() < limit {
                    matching.push(e);
                }
                total += 1;
                if matching.len() == limit && total > skip + limit {
                    break;
                }
            }
        }
        let next = (total > skip + matching.len() && !matching.is_empty())
            .then(|| (skip + matching.len()).to_string());
        Ok(EntryPage {
            entries: matching,
            next,
        })
    }

    /// Removes every entry of a namespace; their blobs follow through GC.
    pub async fn purge_namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        let ids: Vec<u64> = self
            .index
            .lru_ids(Some(namespace))
            .collect::<Result<_, _>>()?;
        let mut removed = 0;
        for id in ids {
            removed += self.remove_entry(id).await?.len() as u64;
        }
        Ok(removed)
    }

    pub fn entry_by_id(&self, id: u64) -> Result<Option<EntryRecord>, StoreError> {
        Ok(self.index.entry(id)?)
    }

    /// Records a minted token's metadata (never the token) for listings.
    pub async fn record_token(
        &self,
        jti: &str,
        meta: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.index
            .put_token_meta(jti, meta.to_string().as_bytes())?;
        self.commit.wait().await?;
        Ok(())
    }

    pub fn tokens(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .index
            .token_metas()?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    /// Revokes a token by id, durably; `until` is its expiry (unix seconds).
    pub async fn revoke_token(&self, jti: &str, until: u64) -> Result<(), StoreError> {
        self.index.revoke(jti, until)?;
        if let Some(raw) = self.index.token_meta(jti)? {
            if let Ok(mut meta) = serde_json::from_slice::<serde_json::Value>(&raw) {
                meta["revoked"] = serde_json::Value::Bool(true);
                self.index
                    .put_token_meta(jti, meta.to_string().as_bytes())?;
            }
        }
        self.commit.wait().await?;
        Ok(())
    }

    /// Bytes each namespace's entries pin: one small tree, kept current by
    /// every entry write.
    pub fn namespace_usage(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.index.namespaces()?)
    }

    /// Entries per namespace, counted from the per-namespace LRU order (keys
    /// only): no counter is stored, so this walks every entry's key.
    pub fn namespace_entry_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        for name in self.namespace_names()? {
            let mut n = 0;
            for id in self.index.lru_ids(Some(&name)) {
                id?;
                n += 1;
            }
            out.push((name, n));
        }
        Ok(out)
    }

    pub fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.index.is_revoked(jti)?)
    }

    pub fn token_meta(&self, jti: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .index
            .token_meta(jti)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}
