//! Freed heap goes back to the kernel (`larder::heap`). Alone in its test
//! binary: it reads this process's resident memory.

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status")
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn freed_heap_below_a_live_allocation_is_returned() {
    const BLOCK: usize = 4 << 10;
    const BLOCKS: usize = 16 << 10; // 64 MiB
    let before = rss_anon_kib();
    // Many small allocations, touched so they are resident, then all freed
    // but the last: glibc keeps the free space under it, as it keeps what a
    // burst of requests freed under the allocations that outlived it.
    let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8 | 1; BLOCK]).collect();
    let last = blocks.pop();
    drop(blocks);
    let freed = rss_anon_kib();
    let held = freed.saturating_sub(before);
    assert!(
        held > 32 << 10,
        "expected glibc to keep the freed blocks resident: {before} kB → {freed} kB"
    );
    larder::heap::return_free_heap();
    let trimmed = rss_anon_kib();
    assert!(
        freed.saturating_sub(trimmed) > held / 2,
        "{held} kB free but resident; after the trim {freed} kB → {trimmed} kB"
    );
    drop(last);
}
