//! Returning freed heap to the kernel.
//!
//! glibc keeps memory freed in the middle of its heap for reuse and returns
//! only what is freed at the top. A server that has just served a burst of
//! requests, or sled's recovery at open, leaves tens of MiB free but
//! resident: measured after a load run, 200 MiB resident of which
//! `malloc_trim` gave back 90 MiB.

/// How often a running server gives free heap back. Memory given back while
/// busy costs page faults when it is reused; at this interval the load bench
/// could not tell the difference (docs/PERFORMANCE.md, session 5).
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Gives the kernel every whole free page in the heap. Blocking; a no-op
/// where the allocator is not glibc's.
pub fn return_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it touches no live
    // allocation and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
