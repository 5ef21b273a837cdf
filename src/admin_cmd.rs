//! `larder admin …`: the admin API from the command line. Human tables by
//! default, `--json` for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Base URL of the Larder server.
    #[arg(long, env = "LARDER_URL", default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// An admin token.
    #[arg(long, env = "LARDER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    // --- TLS (see docs/USING.md, "Native TLS") ---
    /// PEM CA certificate to trust for an https:// --url, besides the
    /// system's roots (a server whose certificate a private CA signed).
    #[arg(long, env = "LARDER_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Usage, counts, traffic and evictions.
    Stats,
    /// Namespaces with their usage and quota.
    Namespaces,
    /// Entries, least recently used first by default.
    Entries {
        #[arg(long)]
        namespace: Option<String>,
        /// oci, gha, http, turbo or nx.
        #[arg(long)]
        protocol: Option<String>,
        /// lru, mru or size.
        #[arg(long, default_value = "lru")]
        order: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Remove every entry of a namespace.
    Purge { namespace: String },
    /// Run garbage collection now.
    Gc,
    /// Evict until usage is at most SIZE (e.g. 40GiB).
    Evict {
        #[arg(long)]
        target: crate::config::Size,
    },
    /// List, create or revoke tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Tokens minted through the admin API.
    List,
    /// Mint a token on the server (recorded, so it is listed).
    Create {
        #[arg(long = "namespace", required = true)]
        namespaces: Vec<String>,
        #[arg(long)]
        read: bool,
        #[arg(long)]
        write: bool,
        /// Admin over every namespace: requires `--namespace '*'` alone.
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "30d")]
        ttl: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
}

pub fn run(args: AdminArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("larder admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call(&args)) {
        Ok(body) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                print!("{}", render(&args.command, &body));
            }
            // An eviction that could not reach its target did not do what
            // was asked: scripts must see that.
            if matches!(args.command, AdminCommand::Evict { .. })
                && body["reached"].as_bool() == Some(false)
            {
                eprintln!(
                    "larder admin: usage {} is still above the target {}: {}",
                    human(body["usage_after"].as_u64().unwrap_or(0)),
                    human(body["target"].as_u64().unwrap_or(0)),
                    text(&body["held_by"])
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("larder admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client(args: &AdminArgs) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("reading --ca-cert {}: {e}", path.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("--ca-cert {} is not a PEM certificate: {e}", path.display()))?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build().map_err(|e| e.to_string())
}

async fn call(args: &AdminArgs) -> Result<Value, String> {
    use reqwest::Method;
    let base = format!("{}/admin/v1", args.url.trim_end_matches('/'));
    let (method, path, body) = match &args.command {
        AdminCommand::Stats => (Method::GET, "/stats".to_owned(), None),
        AdminCommand::Namespaces => (Method::GET, "/namespaces".to_owned(), None),
        AdminCommand::Entries {
            namespace,
            protocol,
            order,
            limit,
            cursor,
        } => {
            let mut q = vec![format!("order={order}"), format!("limit={limit}")];
            for (k, v) in [
                ("namespace", namespace),
                ("protocol", protocol),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(v)));
                }
            }
            (Method::GET, format!("/entries?{}", q.join("&")), None)
        }
        AdminCommand::Purge { namespace } => (
            Method::DELETE,
            format!("/namespaces/{}", encode(namespace)),
            None,
        ),
        AdminCommand::Gc => (Method::POST, "/gc".to_owned(), Some(json!({}))),
        AdminCommand::Evict { target } => (
            Method::POST,
            "/evict".to_owned(),
            Some(json!({ "target_bytes": target.bytes() })),
        ),
        AdminCommand::Tokens(TokensCommand::List) => (Method::GET, "/tokens".to_owned(), None),
        AdminCommand::Tokens(TokensCommand::Create {
            namespaces,
            read,
            write,
            admin,
            ttl,
            name,
        }) => (
            Method::POST,
            "/tokens".to_owned(),
            Some(
                json!({ "namespaces": namespaces, "read": read, "write": write, "admin": admin, "ttl": ttl, "name": name }),
            ),
        ),
        AdminCommand::Tokens(TokensCommand::Revoke { id }) => {
            (Method::DELETE, format!("/tokens/{}", encode(id)), None)
        }
    };
    let client = client(args)?;
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", args.url))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| e.to_string())?;
    let body: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&text).unwrap_or(json!({ "raw": text }))
    };
    if status.is_success() {
        Ok(body)
    } else {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or(&text)
            .to_owned();
        Err(format!("{status}: {msg}"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn human(n: u64) -> String {
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn render(cmd: &AdminCommand, body: &Value) -> String {
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
        AdminCommand::Entries { .. } => {
            let rows = body["entries"]
                .as_array()
                .into_iter()
                .flatten()
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
            let mut out = table(
                &["ID", "PROTOCOL", "NAMESPACE", "NAME", "SIZE", "LAST USED"],
                rows,
            );
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
                    let perms: Vec<&str> =
                        [("read", "read"), ("write", "write"), ("admin", "admin")]
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
                        if t["revoked"].as_bool() == Some(true) {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect();
            table(&["ID", "NAME", "NAMESPACES", "PERMISSIONS", "STATE"], rows)
        }
        AdminCommand::Tokens(TokensCommand::Create { .. }) => {
            format!(
                "# token id {}\n{}\n",
                text(&body["id"]),
                text(&body["token"])
            )
        }
        AdminCommand::Tokens(TokensCommand::Revoke { id }) => format!("revoked {id}\n"),
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
