//! What a storage failure means for clients: a full disk (507) or another
//! failure (500), said in words without the debug text of inner errors.

use std::io;

use super::StoreError;
use crate::cas::CasError;
use crate::index::IndexError;

impl StoreError {
    /// True when the storage had no room for the write (ENOSPC or EDQUOT):
    /// a 507 for clients, where other I/O failures are a 500.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io(e) | StoreError::Cas(CasError::Io(e)) => crate::cas::is_disk_full(e),
            StoreError::Index(e) => e.is_disk_full(),
            _ => false,
        }
    }

    /// The error of a write refused because the store is read-only for lack
    /// of space.
    pub(super) fn disk_full() -> StoreError {
        StoreError::Io(io::Error::new(
            io::ErrorKind::StorageFull,
            "storage is full; writes are refused until space is freed",
        ))
    }

    /// What failed, for a 500's message: the operation and the OS error,
    /// never an inner error's debug text (sled's errors carry one).
    pub fn failure(&self) -> String {
        match self {
            StoreError::Io(e) | StoreError::Cas(CasError::Io(e)) => {
                format!("blob store I/O failed: {e}")
            }
            StoreError::Index(IndexError::Storage(sled::Error::Io(e))) => {
                format!("index write failed: {}", e.kind())
            }
            StoreError::Index(IndexError::Storage(_)) => "index storage failed".into(),
            StoreError::Index(IndexError::Corrupt(_)) => "an index record is corrupt".into(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_and_no_message_carries_debug_text() {
        let enospc = || io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(StoreError::Io(enospc()).is_disk_full());
        assert!(StoreError::Cas(CasError::Io(enospc())).is_disk_full());
        assert!(StoreError::Io(io::Error::from_raw_os_error(libc::EDQUOT)).is_disk_full());
        assert!(StoreError::Index(IndexError::disk_full()).is_disk_full());
        assert!(!StoreError::Io(io::Error::from_raw_os_error(libc::EIO)).is_disk_full());

        // sled keeps its first error and hands out clones carrying its
        // debug text: the kind still tells, the message does not show it.
        let sled_error = sled::Error::Io(enospc()).clone();
        let e = StoreError::Index(IndexError::Storage(sled_error));
        assert!(e.is_disk_full());
        let eio = sled::Error::Io(io::Error::from_raw_os_error(libc::EIO)).clone();
        let failure = StoreError::Index(IndexError::Storage(eio)).failure();
        assert!(failure.starts_with("index write failed"), "{failure}");
        assert!(!failure.contains("Os {"), "{failure}");
    }
}
