#!/usr/bin/env python3
"""Summarise `perf record --call-graph dwarf` files of a Larder process.

    perf_summary.py FILE.data [FILE.data ...]

For each file: samples, share of samples whose stack contains each component
(inclusive, so components overlap), and the hottest leaf functions (self).
Used with `cargo bench --bench load -- --profile-cmd 'perf record ...'`,
which writes one file per operation; see docs/PERFORMANCE.md.
"""
import collections
import re
import subprocess
import sys

# (label, regex on a frame's symbol). Inclusive: a sample counts once per
# component found anywhere on its stack.
COMPONENTS = [
    ("request logging (tracing fmt + TraceLayer)",
     r"tracing_subscriber|tracing_core::|larder::api::request_log"),
    ("  of which writing log lines (write(2))",
     r"tracing_subscriber", r"^(__GI___libc_write|ksys_write)$"),
    ("request metrics (api::observe, metrics)", r"larder::api::observe|larder::metrics"),
    ("sled (index reads/writes)", r"^sled::"),
    ("  of which sled flush (group commit)", r"^sled::.*flush"),
    ("hashing (sha256/blake3)", r"sha2::|blake3::|sha256_"),
    ("file syscalls (read/write/open/stat/rename/unlink)",
     r"^(ksys_read|ksys_write|ksys_pread64|__x64_sys_pread64|do_sys_openat2|do_renameat2|"
     r"do_unlinkat|vfs_statx|vfs_fstatat|__do_sys_newfstatat|__x64_sys_statx)$"),
    ("fsync/fdatasync (CPU part only)", r"^(vfs_fsync_range|do_fsync|__x64_sys_fsync|__x64_sys_fdatasync)$"),
    ("socket send/recv (kernel tcp)", r"^(sock_write_iter|sock_read_iter|tcp_sendmsg|tcp_recvmsg|__sys_sendto|__sys_recvfrom)$"),
    ("epoll / futex wake-ups", r"^(do_epoll_wait|ep_poll|futex_wake|futex_wait|do_futex)$"),
    ("spawn_blocking hand-off", r"tokio::runtime::blocking::pool::Spawner::spawn"),
    ("hyper h1 parse/encode", r"hyper::proto::h1::role"),
    ("OCI handlers (larder::api::oci)", r"larder::api::oci::"),
    ("cache layer (larder::cache)", r"larder::cache::"),
    ("CAS files (larder::cas)", r"larder::cas::"),
    ("serde_json", r"serde_json::"),
    ("malloc/free", r"^(malloc|free|_int_malloc|_int_free|realloc|cfree|__libc_malloc|__libc_free)$"),
]


def stacks(path):
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "ip,sym", "--no-inline"],
        capture_output=True, text=True, check=False).stdout
    stack = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            if stack:
                yield stack
            stack = []
            continue
        parts = line.split(None, 1)
        sym = parts[1] if len(parts) > 1 else "[unknown]"
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        stack.append(sym)
    if stack:
        yield stack


def summarise(path):
    total = 0
    inclusive = collections.Counter()
    leaf = collections.Counter()
    # A component with several patterns counts samples matching all of them.
    compiled = [(c[0], [re.compile(rx) for rx in c[1:]]) for c in COMPONENTS]
    for st in stacks(path):
        total += 1
        leaf[st[0]] += 1
        for label, rxs in compiled:
            if all(any(rx.search(f) for f in st) for rx in rxs):
                inclusive[label] += 1
    print(f"== {path}: {total} samples")
    if not total:
        return
    for label, *_ in COMPONENTS:
        print(f"  {100.0 * inclusive[label] / total:5.1f}%  {label}")
    print("  hottest leaves:")
    for sym, n in leaf.most_common(12):
        print(f"  {100.0 * n / total:5.1f}%  {sym[:110]}")


for p in sys.argv[1:]:
    summarise(p)
