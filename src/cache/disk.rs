//! A full disk: telling it from other I/O failures.

use super::StoreError;
use crate::cas::CasError;

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
}
