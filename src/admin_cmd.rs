//! `larder admin …`: the admin API from the command line. Human tables by
//! default, `--json` for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

mod render;

use render::{human, render, text};

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
    /// Entries, least recently used first by default; `entries delete ID`
    /// removes one.
    #[command(args_conflicts_with_subcommands = true)]
    Entries {
        #[command(subcommand)]
        action: Option<EntriesAction>,
        #[command(flatten)]
        list: EntriesList,
    },
    /// Remove every entry of a namespace.
    Purge {
        /// The namespace to empty (its quota and tokens stay).
        namespace: String,
    },
    /// Run garbage collection now.
    Gc,
    /// Evict until usage is at most SIZE (e.g. 40GiB).
    Evict {
        /// Usage to evict down to, e.g. 40GiB.
        #[arg(long)]
        target: crate::config::Size,
    },
    /// Background workers: runs, failures, last run and its error.
    Workers,
    /// List, create or revoke tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

/// Which entries `admin entries` lists, and in what order.
#[derive(Args, Debug)]
pub struct EntriesList {
    /// Only entries of this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only entries of this protocol: oci, gha, http, turbo or nx.
    #[arg(long)]
    pub protocol: Option<String>,
    /// lru (least recently used first), mru or size (largest first).
    #[arg(long, default_value = "lru")]
    pub order: String,
    /// Entries per page (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Continue after the previous page (the `more: --cursor` it printed).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum EntriesAction {
    /// Remove one entry by id, with the entries that need it (an image
    /// index listing a removed manifest goes too); GC frees their blobs.
    Delete {
        /// The entry's id (the ID column of `admin entries`).
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Tokens with their expiry and last use: those minted through the
    /// admin API, and those minted offline (`larder token create`) once the
    /// server has verified them (it cannot know them before).
    List,
    /// Mint a token on the server (recorded, so it is listed).
    Create {
        /// Namespace the token may use (repeatable); `*` means every namespace.
        #[arg(long = "namespace", required = true)]
        namespaces: Vec<String>,
        /// Allow reads (pull, cache hits).
        #[arg(long)]
        read: bool,
        /// Allow writes (push, cache saves).
        #[arg(long)]
        write: bool,
        /// Admin over every namespace: requires `--namespace '*'` alone.
        #[arg(long)]
        admin: bool,
        /// Allow scraping /metrics where metrics.require_token is set; needs
        /// `--namespace '*'` among the namespaces.
        #[arg(long)]
        metrics: bool,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// A name for the token (its subject), shown in logs and listings;
        /// default `admin-api`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a token by its id; fails for an id the server does not know.
    Revoke {
        /// The token's id (the `jti`, as `tokens list` and `token create` print it).
        id: String,
        /// Revoke even an id the server has never seen (a token minted
        /// offline and not used here yet).
        #[arg(long)]
        force: bool,
    },
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
            action: Some(EntriesAction::Delete { id }),
            ..
        } => (Method::DELETE, format!("/entries/{id}"), None),
        AdminCommand::Entries {
            action: None,
            list:
                EntriesList {
                    namespace,
                    protocol,
                    order,
                    limit,
                    cursor,
                },
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
        AdminCommand::Workers => (Method::GET, "/workers".to_owned(), None),
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
            metrics,
            ttl,
            name,
        }) => (
            Method::POST,
            "/tokens".to_owned(),
            Some(json!({
                "namespaces": namespaces, "read": read, "write": write, "admin": admin,
                "metrics": metrics, "ttl": ttl, "name": name
            })),
        ),
        AdminCommand::Tokens(TokensCommand::Revoke { id, force }) => {
            let query = if *force { "?force=true" } else { "" };
            (
                Method::DELETE,
                format!("/tokens/{}{query}", encode(id)),
                None,
            )
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
