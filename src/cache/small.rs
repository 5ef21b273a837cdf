//! Small content kept in memory: manifests, which every BuildKit import
//! fetches (often the same one from many runners at once), and the small
//! values that are most of what Bazel, ccache, Gradle and Turborepo fetch,
//! so that a hit needs no file open and no hop to the blocking pool. Content is
//! immutable under its id, so a cached copy never goes stale; a deleted blob
//! is unreachable because its entry goes first, and its bytes simply age out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

use crate::cas::ContentId;

/// Larger content is read from its file every time.
pub const MAX_ITEM: usize = 256 << 10;

pub struct SmallContent {
    inner: Mutex<Inner>,
    /// Bytes held at most (`storage.memory_cache`).
    capacity: usize,
}

/// First in, first out: simpler than LRU and as good for content that is
/// read in bursts (a cache export, then the runners that import it).
#[derive(Default)]
struct Inner {
    items: HashMap<ContentId, Bytes>,
    order: VecDeque<ContentId>,
    bytes: usize,
}

impl SmallContent {
    pub fn new(capacity: u64) -> SmallContent {
        SmallContent {
            inner: Mutex::default(),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
        }
    }

    pub fn get(&self, id: &ContentId) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.items.get(id).cloned()
    }

    pub fn insert(&self, id: ContentId, content: Bytes) {
        if content.len() > MAX_ITEM || content.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let len = content.len();
        if inner.items.insert(id, content).is_some() {
            return;
        }
        inner.order.push_back(id);
        inner.bytes += len;
        while inner.bytes > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.items.remove(&oldest) {
                inner.bytes -= gone.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ContentId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        ContentId(b)
    }

    const CAPACITY: usize = 16 << 20;

    #[test]
    fn stays_within_capacity_dropping_the_oldest_first() {
        let cache = SmallContent::new(CAPACITY as u64);
        let item = Bytes::from(vec![7u8; MAX_ITEM]);
        let fits = CAPACITY / MAX_ITEM;
        for n in 0..fits as u32 + 3 {
            cache.insert(id(n), item.clone());
        }
        let inner = cache.inner.lock().unwrap();
        assert!(inner.bytes <= CAPACITY, "{} bytes held", inner.bytes);
        assert_eq!(inner.items.len(), fits);
        drop(inner);
        for n in 0..3 {
            assert!(cache.get(&id(n)).is_none(), "item {n} should be gone");
        }
        assert_eq!(cache.get(&id(fits as u32 + 2)), Some(item));
    }

    #[test]
    fn large_content_and_repeated_inserts_are_not_counted_twice() {
        let cache = SmallContent::new(CAPACITY as u64);
        cache.insert(id(1), Bytes::from(vec![0u8; MAX_ITEM + 1]));
        assert!(cache.get(&id(1)).is_none());
        cache.insert(id(2), Bytes::from_static(b"abc"));
        cache.insert(id(2), Bytes::from_static(b"abc"));
        assert_eq!(cache.inner.lock().unwrap().bytes, 3);
    }
}
