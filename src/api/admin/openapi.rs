//! `GET /admin/v1/openapi.json`: an OpenAPI 3 description of the admin API,
//! built from `ROUTES` (a test calls every route listed here).

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary, success status) of every admin route.
pub const ROUTES: &[(&str, &str, &str, u16)] = &[
    (
        "get",
        "/admin/v1/stats",
        "Usage, counts, traffic by protocol, evictions, uptime, version",
        200,
    ),
    (
        "get",
        "/admin/v1/namespaces",
        "Per namespace: used bytes, entries, last use, quota, hits and misses since start (only those a non-admin token may read)",
        200,
    ),
    (
        "delete",
        "/admin/v1/namespaces/{namespace}",
        "Remove every entry of a namespace",
        200,
    ),
    (
        "get",
        "/admin/v1/entries",
        "Entries, paginated; filter by namespace, protocol and name prefix; order lru, mru or size",
        200,
    ),
    (
        "get",
        "/admin/v1/entries/{id}",
        "One entry and the blobs it pins: id, sha256, size and shared_by (entries pinning it, this one included)",
        200,
    ),
    (
        "delete",
        "/admin/v1/entries/{id}",
        "Remove an entry (and entries that need it)",
        200,
    ),
    (
        "post",
        "/admin/v1/gc",
        "Run garbage collection now; returns its report",
        200,
    ),
    (
        "post",
        "/admin/v1/evict",
        "Evict until usage is at most target_bytes; returns the report",
        200,
    ),
    (
        "get",
        "/admin/v1/workers",
        "Background workers: runs, failures, last run; the last eviction passes that removed something (newest first)",
        200,
    ),
    (
        "get",
        "/admin/v1/history",
        "Time series of usage, bytes in and out, hits and misses per protocol, evictions and refusals: range hour (per minute), day (per 15 minutes) or week (per 2 hours)",
        200,
    ),
    ("post", "/admin/v1/tokens", "Mint a token", 201),
    (
        "get",
        "/admin/v1/tokens",
        "Tokens minted through this API (metadata only)",
        200,
    ),
    (
        "delete",
        "/admin/v1/tokens/{jti}",
        "Revoke a token by id; 404 for an id this server has not seen, unless force=true",
        204,
    ),
    (
        "get",
        "/admin/v1/whoami",
        "The caller: subject, whether it is an admin, and the namespaces it may read or write (a non-admin token sees those namespaces, and their entries, read-only unless it may write)",
        200,
    ),
    ("get", "/admin/v1/openapi.json", "This document", 200),
];

fn parameters(path: &str) -> Vec<Value> {
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if path == "/admin/v1/entries" {
        for (name, kind, desc) in [
            ("namespace", "string", "only this namespace"),
            (
                "protocol",
                "string",
                "oci, gha, http, turbo, nx, npm, pypi or go",
            ),
            (
                "prefix",
                "string",
                "only entries whose name starts with this",
            ),
            ("order", "string", "lru (default), mru or size"),
            ("limit", "integer", "1 to 1000, default 100"),
            ("cursor", "string", "next_cursor of the previous page"),
        ] {
            params.push(json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": { "type": kind } }));
        }
    }
    if path == "/admin/v1/history" {
        params.push(json!({ "name": "range", "in": "query", "required": false,
            "description": "hour (default), day or week",
            "schema": { "type": "string", "enum": ["hour", "day", "week"] } }));
        params.push(json!({ "name": "namespace", "in": "query", "required": false,
            "description": "one namespace's hits, misses and used bytes instead (for a token that may read it; the server's series need an admin token)",
            "schema": { "type": "string" } }));
    }
    if path == "/admin/v1/tokens/{jti}" {
        params.push(json!({ "name": "force", "in": "query", "required": false,
            "description": "revoke an id this server has never seen (a token minted offline, not used here yet)",
            "schema": { "type": "boolean" } }));
    }
    params
}

fn body(method: &str, path: &str) -> Option<Value> {
    let schema = match (method, path) {
        ("post", "/admin/v1/evict") => json!({
            "type": "object", "required": ["target_bytes"],
            "properties": { "target_bytes": { "type": "integer", "minimum": 0 } }
        }),
        ("post", "/admin/v1/tokens") => json!({
            "type": "object", "required": ["namespaces"],
            "properties": {
                "namespaces": { "type": "array", "items": { "type": "string" } },
                "read": { "type": "boolean" }, "write": { "type": "boolean" }, "admin": { "type": "boolean" }, "metrics": { "type": "boolean" },
                "ttl": { "type": "string", "example": "30d" }, "name": { "type": "string" }
            }
        }),
        _ => return None,
    };
    Some(json!({ "required": true, "content": { "application/json": { "schema": schema } } }))
}

/// Served to admins only, like everything it describes.
pub async fn document(_: super::Admin) -> Json<Value> {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, ok) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "parameters": parameters(path),
            "security": [{ "bearer": [] }],
            "responses": {
                ok.to_string(): { "description": "success" },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" },
            },
        });
        if let Some(b) = body(method, path) {
            op["requestBody"] = b;
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|o| o.insert(method.to_string(), op));
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Larder admin API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "error": { "type": "object", "properties": {
                            "code": { "type": "string" }, "message": { "type": "string" }
                        } } }
                    } } }
                }
            }
        }
    }))
}
