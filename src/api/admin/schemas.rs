//! Response bodies in `openapi.json` for the routes whose fields the
//! dashboard reads, so a client of the admin API knows them too.

use serde_json::{json, Map, Value};

/// The success body of routes whose fields the dashboard reads.
pub(super) fn response(path: &str) -> Option<Value> {
    let counts = |what: &str, keys: &[&str]| {
        let props: Map<String, Value> = keys
            .iter()
            .map(|k| (k.to_string(), json!({ "type": "integer" })))
            .collect();
        json!({ "type": "object", "description": what, "properties": props })
    };
    let protocols = &crate::history::PROTOCOLS;
    let schema = match path {
        "/admin/v1/history" => json!({
            "type": "object",
            "properties": {
                "range": { "type": "string" },
                "namespace": { "type": "string", "description": "present for a namespace's series" },
                "bucket_seconds": { "type": "integer", "description": "width of a point" },
                "buckets": { "type": "integer", "description": "the most points the range keeps" },
                "max_bytes": { "type": "integer" },
                "hard_limit_bytes": { "type": "integer" },
                "high_watermark_bytes": { "type": "integer" },
                "low_watermark_bytes": { "type": "integer" },
                "points": { "type": "array", "description": "oldest first; buckets where the server was not running are absent", "items": {
                    "type": "object",
                    "properties": {
                        "t": { "type": "integer", "description": "bucket start, unix seconds" },
                        "used_bytes": { "type": "integer", "description": "at the bucket's last sample" },
                        "bytes_in": { "type": "integer" },
                        "bytes_out": { "type": "integer" },
                        "bytes_in_by_protocol": counts("request body bytes per protocol", protocols),
                        "bytes_out_by_protocol": counts("response body bytes per protocol", protocols),
                        "evictions": { "type": "integer" },
                        "evicted_bytes": { "type": "integer" },
                        "refusals": { "type": "integer" },
                        "refusals_by_reason": counts("refused writes per reason", &crate::history::REASONS),
                        "hits": { "description": "per protocol for the server's series; a number for a namespace's", "oneOf": [counts("per protocol", protocols), { "type": "integer" }] },
                        "misses": { "description": "like hits", "oneOf": [counts("per protocol", protocols), { "type": "integer" }] },
                    }
                } }
            }
        }),
        "/admin/v1/whoami" => json!({
            "type": "object",
            "properties": {
                "subject": { "type": "string" },
                "admin": { "type": "boolean" },
                "namespaces": { "type": "array", "items": { "type": "object", "properties": {
                    "namespace": { "type": "string", "description": "a namespace, or * for every one" },
                    "read": { "type": "boolean" }, "write": { "type": "boolean" }
                } } }
            }
        }),
        "/admin/v1/namespaces" => json!({
            "type": "object",
            "properties": { "namespaces": { "type": "array", "items": { "type": "object", "properties": {
                "name": { "type": "string" },
                "used_bytes": { "type": "integer", "description": "bytes of the blobs its entries pin" },
                "quota_bytes": { "type": "integer", "nullable": true },
                "entries": { "type": "integer" },
                "last_used": { "type": "string", "format": "date-time", "nullable": true },
                "hits": { "type": "integer", "description": "since the server started" },
                "misses": { "type": "integer", "description": "since the server started" },
            } } } }
        }),
        "/admin/v1/entries/{id}" => json!({
            "type": "object",
            "properties": {
                "id": { "type": "integer" }, "protocol": { "type": "string" },
                "namespace": { "type": "string" }, "name": { "type": "string" },
                "size": { "type": "integer" }, "blobs": { "type": "integer" },
                "created": { "type": "string", "format": "date-time" },
                "last_used": { "type": "string", "format": "date-time" },
                "only_here_bytes": { "type": "integer", "description": "what deleting it frees: its blobs no other entry pins" },
                "pinned_blobs": { "type": "array", "items": { "type": "object", "properties": {
                    "id": { "type": "string", "description": "BLAKE3, hex" },
                    "sha256": { "type": "string", "nullable": true },
                    "size": { "type": "integer", "nullable": true },
                    "shared_by": { "type": "integer", "description": "entries pinning it, this one included" },
                } } }
            }
        }),
        _ => return None,
    };
    Some(json!({ "application/json": { "schema": schema } }))
}
