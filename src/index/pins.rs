//! The pins entries hold on a blob. They live in the blob's own record: sled
//! keeps a page of metadata in memory for every ~12 keys it stores, so two
//! trees of pin counts cost as much memory per blob as every other record of
//! it together, and each pin was two extra reads and writes per entry write.

use super::{Index, IndexError};
use crate::cas::ContentId;

/// Entries pinning a blob, by namespace: a blob counts once toward the usage
/// of each namespace that pins it, and is unpinned when no namespace does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Pins(pub Vec<(String, u64)>);

impl Pins {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// Takes one pin for `ns`; true if it is that namespace's first.
    pub fn take(&mut self, ns: &str) -> bool {
        match self.0.iter_mut().find(|(n, _)| n == ns) {
            Some((_, c)) => {
                *c += 1;
                false
            }
            None => {
                self.0.push((ns.to_owned(), 1));
                true
            }
        }
    }

    /// Releases one pin of `ns`; true if it was that namespace's last.
    pub fn release(&mut self, ns: &str) -> bool {
        let Some(i) = self.0.iter().position(|(n, _)| n == ns) else {
            return false;
        };
        if self.0[i].1 <= 1 {
            self.0.swap_remove(i);
            true
        } else {
            self.0[i].1 -= 1;
            false
        }
    }
}

impl Index {
    /// Entries pinning blob `id` (0 if it has no record).
    pub fn pin_count(&self, id: &ContentId) -> Result<u64, IndexError> {
        Ok(self.stored_blob(id)?.map_or(0, |b| b.pins.total()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_counts_from_its_first_pin_to_its_last() {
        let mut p = Pins::default();
        assert!(p.take("a"));
        assert!(!p.take("a"));
        assert!(p.take("b"));
        assert_eq!(p.total(), 3);
        assert!(!p.release("a"));
        assert!(p.release("a"));
        assert!(
            !p.release("a"),
            "a namespace without pins has nothing to release"
        );
        assert_eq!(p.total(), 1);
        assert!(p.release("b"));
        assert_eq!(p, Pins::default());
    }
}
