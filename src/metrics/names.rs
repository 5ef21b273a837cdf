//! The name, type and help text of every metric Larder exports: the one
//! place one is declared (tests check the exposition against it).

/// (name, type, help) of every metric Larder exports.
pub const NAMES: &[(&str, &str, &str)] = &[
    (
        REQUESTS,
        "counter",
        "HTTP requests by protocol, route template, method and status.",
    ),
    (
        REQUEST_SECONDS,
        "histogram",
        "HTTP request latency by protocol and route template.",
    ),
    (
        HITS,
        "counter",
        "Cache lookups that found what was asked for, by protocol.",
    ),
    (
        MISSES,
        "counter",
        "Cache lookups that found nothing, by protocol.",
    ),
    (
        BYTES_IN,
        "counter",
        "Request body bytes received, by protocol.",
    ),
    (
        BYTES_OUT,
        "counter",
        "Response body bytes sent, by protocol.",
    ),
    (
        USED_BYTES,
        "gauge",
        "Bytes counted against the disk budget (blobs and uploads in progress).",
    ),
    (MAX_BYTES, "gauge", "The disk budget (storage.max_size)."),
    (
        HARD_LIMIT_BYTES,
        "gauge",
        "The line no write crosses (storage.hard_limit).",
    ),
    (
        OVER_BUDGET_BYTES,
        "gauge",
        "Bytes of usage above storage.max_size (held by leases or uploads).",
    ),
    (
        LEASED_BYTES,
        "gauge",
        "Bytes no entry pins that leases still hold, as the last eviction or GC pass found.",
    ),
    (
        WRITE_EVICTIONS,
        "counter",
        "Eviction passes run to admit a write that would have crossed storage.max_size.",
    ),
    (
        REFUSED_WRITES,
        "counter",
        "Writes refused with 507 because they would cross storage.hard_limit, by reason.",
    ),
    (BLOBS, "gauge", "Distinct blobs stored."),
    (
        ENTRIES,
        "gauge",
        "Entries (manifests, cache keys, artifacts) by protocol.",
    ),
    (
        EVICTIONS,
        "counter",
        "Entries removed by eviction, idle expiry and quotas.",
    ),
    (
        EVICTED_BYTES,
        "counter",
        "Bytes freed by eviction and garbage collection.",
    ),
    (UPLOADS, "gauge", "Upload sessions in progress."),
    (
        FLUSH_SECONDS,
        "histogram",
        "Latency of index flushes (group commits and batches of entry writes).",
    ),
    (UPTIME, "gauge", "Seconds since the server started."),
    (
        INDEX_SNAPSHOTS,
        "counter",
        "Times the index was reopened so that the next start replays little.",
    ),
    (
        STORAGE_FULL,
        "gauge",
        "1 while the disk is full and writes are refused (read-only mode), else 0.",
    ),
    (
        STORAGE_FULL_REFUSALS,
        "counter",
        "Writes that failed or were refused because the disk was full (ENOSPC, EDQUOT).",
    ),
    (
        CONNECTIONS,
        "gauge",
        "Client connections open (at most server.max_connections).",
    ),
    (
        CONNECTIONS_CUT,
        "counter",
        "Connections or requests cut by a server limit, by reason: header_timeout, idle_timeout, body_rate, send_stall.",
    ),
    (
        SENT_FROM_FILES,
        "counter",
        "Response bytes the kernel sent straight from blob files in the page cache (sendfile, plain HTTP/1), never copied through Larder.",
    ),
    (
        BUILD_INFO,
        "gauge",
        "Always 1; its labels say which build is running (version, and commit when the build was told it).",
    ),
    (
        NS_HITS,
        "counter",
        "Cache lookups that found what was asked for, by namespace and protocol.",
    ),
    (
        NS_MISSES,
        "counter",
        "Cache lookups that found nothing, by namespace and protocol.",
    ),
    (
        NS_USED_BYTES,
        "gauge",
        "Bytes of blobs a namespace's entries pin (what its quota counts).",
    ),
    (
        NS_ENTRIES,
        "gauge",
        "Entries per namespace, counted at most once a minute.",
    ),
    (
        PROXY_HITS,
        "counter",
        "Proxied package files and metadata served from the cache, by ecosystem (npm, pypi, go).",
    ),
    (
        PROXY_MISSES,
        "counter",
        "Proxied requests the cache could not answer alone (absent, or metadata past its TTL), by ecosystem.",
    ),
    (
        PROXY_FETCHES,
        "counter",
        "Requests made to upstream registries (concurrent requests for one file count once), by ecosystem.",
    ),
    (
        PROXY_ERRORS,
        "counter",
        "Upstream fetches that failed (unreachable, timeout, error status, hash mismatch), by ecosystem.",
    ),
    (
        PROXY_STALE,
        "counter",
        "Metadata served past its TTL because the upstream failed, by ecosystem.",
    ),
    (
        PROCESS_CPU_SECONDS,
        "counter",
        "Total user and system CPU time spent in seconds.",
    ),
    (
        PROCESS_RESIDENT_MEMORY,
        "gauge",
        "Resident memory size in bytes.",
    ),
    (
        PROCESS_VIRTUAL_MEMORY,
        "gauge",
        "Virtual memory size in bytes.",
    ),
    (PROCESS_OPEN_FDS, "gauge", "Number of open file descriptors."),
    (
        PROCESS_MAX_FDS,
        "gauge",
        "Maximum number of open file descriptors.",
    ),
    (
        PROCESS_START_TIME,
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
];

pub const BUILD_INFO: &str = "larder_build_info";

pub const REQUESTS: &str = "larder_http_requests_total";
pub const REQUEST_SECONDS: &str = "larder_http_request_duration_seconds";
pub const HITS: &str = "larder_cache_hits_total";
pub const MISSES: &str = "larder_cache_misses_total";
pub const BYTES_IN: &str = "larder_bytes_received_total";
pub const BYTES_OUT: &str = "larder_bytes_sent_total";
pub const USED_BYTES: &str = "larder_storage_used_bytes";
pub const MAX_BYTES: &str = "larder_storage_max_bytes";
pub const HARD_LIMIT_BYTES: &str = "larder_storage_hard_limit_bytes";
pub const OVER_BUDGET_BYTES: &str = "larder_storage_over_budget_bytes";
pub const LEASED_BYTES: &str = "larder_leased_bytes";
pub const REFUSED_WRITES: &str = "larder_refused_writes_total";
pub const WRITE_EVICTIONS: &str = "larder_write_eviction_runs_total";
pub const BLOBS: &str = "larder_blobs";
pub const ENTRIES: &str = "larder_entries";
pub const EVICTIONS: &str = "larder_evictions_total";
pub const EVICTED_BYTES: &str = "larder_evicted_bytes_total";
pub const UPLOADS: &str = "larder_uploads_in_progress";
/// What only a cluster replica exports, beside most of `NAMES`.
pub const CLUSTER_NAMES: &[(&str, &str, &str)] = &[
    (
        CLUSTER_REPLICAS,
        "gauge",
        "Cluster mode: replicas whose heartbeat is recent.",
    ),
    (
        CLUSTER_LEADER,
        "gauge",
        "Cluster mode: 1 on the replica that runs eviction and sweeps.",
    ),
    (
        CLUSTER_DATABASE_UP,
        "gauge",
        "Cluster mode: 1 when this replica reached PostgreSQL for this scrape.",
    ),
    (
        TIER_USED_BYTES,
        "gauge",
        "Cluster mode: bytes in this replica's local read-through tier.",
    ),
    (
        TIER_CAPACITY_BYTES,
        "gauge",
        "Cluster mode: the local tier's size (cluster.local_cache_size).",
    ),
    (
        METADATA_CACHE_LISTENING,
        "gauge",
        "Cluster mode: 1 while this replica hears the database's changes, so its metadata cache answers.",
    ),
    (
        METADATA_CACHE_HITS,
        "counter",
        "Cluster mode: lookups of blobs, tags and entries this replica answered from memory.",
    ),
    (
        METADATA_CACHE_MISSES,
        "counter",
        "Cluster mode: lookups of blobs, tags and entries that asked the database.",
    ),
];

pub const CLUSTER_REPLICAS: &str = "larder_cluster_replicas";
pub const CLUSTER_LEADER: &str = "larder_cluster_leader";
pub const CLUSTER_DATABASE_UP: &str = "larder_cluster_database_up";
pub const TIER_USED_BYTES: &str = "larder_tier_used_bytes";
pub const TIER_CAPACITY_BYTES: &str = "larder_tier_capacity_bytes";
pub const METADATA_CACHE_LISTENING: &str = "larder_cluster_metadata_cache_listening";
pub const METADATA_CACHE_HITS: &str = "larder_cluster_metadata_cache_hits_total";
pub const METADATA_CACHE_MISSES: &str = "larder_cluster_metadata_cache_misses_total";
pub const FLUSH_SECONDS: &str = "larder_index_flush_duration_seconds";
pub const UPTIME: &str = "larder_uptime_seconds";
pub const INDEX_SNAPSHOTS: &str = "larder_index_snapshots_total";
pub const STORAGE_FULL: &str = "larder_storage_full";
pub const STORAGE_FULL_REFUSALS: &str = "larder_storage_full_refusals_total";
pub const CONNECTIONS: &str = "larder_connections_open";
pub const CONNECTIONS_CUT: &str = "larder_connections_cut_total";
pub const SENT_FROM_FILES: &str = "larder_sent_from_files_bytes_total";

pub const NS_HITS: &str = "larder_namespace_cache_hits_total";
pub const NS_MISSES: &str = "larder_namespace_cache_misses_total";
pub const NS_USED_BYTES: &str = "larder_namespace_used_bytes";
pub const NS_ENTRIES: &str = "larder_namespace_entries";
pub const PROXY_HITS: &str = "larder_proxy_hits_total";
pub const PROXY_MISSES: &str = "larder_proxy_misses_total";
pub const PROXY_FETCHES: &str = "larder_proxy_upstream_fetches_total";
pub const PROXY_ERRORS: &str = "larder_proxy_upstream_errors_total";
pub const PROXY_STALE: &str = "larder_proxy_stale_served_total";
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";
