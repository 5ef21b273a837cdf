//! How `larder admin` shows the API's answers to people: left-aligned
//! tables and short summaries (`--json` prints the answers as they are).

use serde_json::Value;

use super::{AdminCommand, EntriesAction, TokensCommand};

pub(super) fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(super) fn render(cmd: &AdminCommand, body: &Value) -> String {
    match cmd {
        AdminCommand::Stats => {
            let mut out = format!(
                "used {} of {} ({} blobs), uptime {}s, version {}\nevictions {} ({})\n",
                human(body["used_bytes"].as_u64().unwrap_or(0)),
                human(body["max_bytes"].as_u64().unwrap_or(0)),
                text(&body["blobs"]),
                text(&body["uptime_seconds"]),
                text(&body["version"]),
                text(&body["evictions"]),
                human(body["evicted_bytes"].as_u64().unwrap_or(0)),
            );
            let protocols = body["entries"].as_object().cloned().unwrap_or_default();
            let rows = protocols
                .iter()
                .map(|(p, n)| {
                    let t = &body["traffic"][p];
                    vec![
                        p.clone(),
                        text(n),
                        text(&t["hits"]).replace('-', "0"),
                        text(&t["misses"]).replace('-', "0"),
                        human(t["bytes_out"].as_u64().unwrap_or(0)),
                    ]
                })
                .collect();
            out += &table(&["PROTOCOL", "ENTRIES", "HITS", "MISSES", "SERVED"], rows);
            out
        }
        AdminCommand::Namespaces => {
            let rows = body["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    vec![
                        text(&n["name"]),
                        human(n["used_bytes"].as_u64().unwrap_or(0)),
                        n["quota_bytes"].as_u64().map_or("-".into(), human),
                        text(&n["entries"]),
                        text(&n["last_used"]),
                    ]
                })
                .collect();
            table(
                &["NAMESPACE", "USED", "QUOTA", "ENTRIES", "LAST USED"],
                rows,
            )
        }
        AdminCommand::Entries {
            action: Some(EntriesAction::Delete { .. }),
            ..
        } => {
            let removed = body["removed"].as_array().cloned().unwrap_or_default();
            let mut out = format!("removed {} entries\n", removed.len());
            out += &entry_table(&removed);
            out
        }
        AdminCommand::Workers => {
            let rows = body["workers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, w)| {
                    vec![
                        name.clone(),
                        text(&w["runs"]),
                        text(&w["failures"]),
                        w["every_secs"]
                            .as_u64()
                            .map_or("-".into(), |s| format!("{s}s")),
                        text(&w["last_run"]),
                        w["last_duration_ms"]
                            .as_u64()
                            .map_or("-".into(), |ms| format!("{ms}ms")),
                        text(&w["last_error"]),
                    ]
                })
                .collect();
            table(
                &[
                    "WORKER",
                    "RUNS",
                    "FAILURES",
                    "EVERY",
                    "LAST RUN",
                    "TOOK",
                    "LAST ERROR",
                ],
                rows,
            )
        }
        AdminCommand::Entries { .. } => {
            let entries = body["entries"].as_array().cloned().unwrap_or_default();
            let mut out = entry_table(&entries);
            if let Some(c) = body["next_cursor"].as_str() {
                out += &format!("more: --cursor {c}\n");
            }
            out
        }
        AdminCommand::Tokens(TokensCommand::List) => {
            let rows = body["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let perms: Vec<&str> = [
                        ("read", "read"),
                        ("write", "write"),
                        ("admin", "admin"),
                        ("metrics", "metrics"),
                    ]
                    .iter()
                    .filter(|(k, _)| t[*k].as_bool() == Some(true))
                    .map(|(_, v)| *v)
                    .collect();
                    vec![
                        text(&t["id"]),
                        text(&t["name"]),
                        t["namespaces"]
                            .as_array()
                            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        perms.join(","),
                        t["expires_at"].as_u64().map_or("-".into(), rfc3339),
                        t["last_used"].as_u64().map_or("never".into(), rfc3339),
                        token_state(t).into(),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "NAME",
                    "NAMESPACES",
                    "PERMISSIONS",
                    "EXPIRES",
                    "LAST USED",
                    "STATE",
                ],
                rows,
            ) + "\n(tokens minted offline with `larder token create` are listed once this server has verified them)\n"
        }
        AdminCommand::Tokens(TokensCommand::Create { .. }) => {
            format!(
                "# token id {}\n{}\n",
                text(&body["id"]),
                text(&body["token"])
            )
        }
        AdminCommand::Tokens(TokensCommand::Revoke { id, .. }) => format!("revoked {id}\n"),
        AdminCommand::Purge { namespace } => {
            format!(
                "removed {} entries from {namespace}\n",
                text(&body["entries_removed"])
            )
        }
        AdminCommand::Gc | AdminCommand::Evict { .. } => {
            let mut out = String::new();
            for (k, v) in body.as_object().into_iter().flatten() {
                out += &format!("{k}: {}\n", text(v));
            }
            out
        }
    }
}

fn rfc3339(secs: u64) -> String {
    crate::auth::token::rfc3339(secs)
}

fn token_state(t: &Value) -> &'static str {
    if t["revoked"].as_bool() == Some(true) {
        "revoked"
    } else if t["expires_at"]
        .as_u64()
        .is_some_and(|exp| exp <= crate::auth::token::now_secs())
    {
        "expired"
    } else {
        "active"
    }
}

fn entry_table(entries: &[Value]) -> String {
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                text(&e["id"]),
                text(&e["protocol"]),
                text(&e["namespace"]),
                text(&e["name"]),
                human(e["size"].as_u64().unwrap_or(0)),
                text(&e["last_used"]),
            ]
        })
        .collect();
    table(
        &["ID", "PROTOCOL", "NAMESPACE", "NAME", "SIZE", "LAST USED"],
        rows,
    )
}
