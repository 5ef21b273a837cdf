//! `larder admin …` (the real binary) against a live server in token mode:
//! stats, namespaces, entries, gc, evict, purge and tokens, each as a table
//! and with `--json`; the URL and token from `LARDER_URL`/`LARDER_TOKEN` or
//! flags; refusals end non-zero with the server's message.

mod admin_support;
mod auth_support;
mod common;
mod oci_support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use admin_support::*;
use auth_support::{expect_unauthorized, token_server};
use common::process::larder_bin;
use common::TestServer;
use larder::config::{Config, NamespaceConfig, Size, Span};
use oci_support::*;
use reqwest::StatusCode;
use serde_json::Value;

const LEASE: Duration = Duration::from_millis(1);

/// A token-mode server with a quota on team-a and a tiny lease, and an
/// admin token for it.
async fn server(adjust: impl FnOnce(&mut Config)) -> (TestServer, String) {
    let (server, key) = token_server(|cfg| {
        cfg.gc.interval = Span::secs(3600);
        cfg.gc.lease = Span(LEASE);
        cfg.namespaces.insert(
            "team-a".into(),
            NamespaceConfig {
                max_size: Some(Size(64 << 20)),
            },
        );
        adjust(cfg);
    })
    .await;
    let token = admin_token(&key);
    (server, token)
}

/// `larder ARGS` with only the given environment (no LARDER variables of the
/// developer's), run off the async runtime that serves the server.
async fn larder(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(larder_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LARDER") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&args)
            .envs(env)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run larder")
    })
    .await
    .expect("larder runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A server's admin CLI, configured through the environment.
struct Cli {
    url: String,
    token: String,
}

impl Cli {
    fn new(server: &TestServer, token: &str) -> Cli {
        Cli {
            url: server.base(),
            token: token.to_owned(),
        }
    }

    /// `larder admin ARGS` with LARDER_URL and LARDER_TOKEN; asserts success
    /// and returns stdout.
    async fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        let out = larder(
            &all,
            &[("LARDER_URL", &self.url), ("LARDER_TOKEN", &self.token)],
        )
        .await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "larder {all:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        stdout
    }

    /// `larder admin --json ARGS`, parsed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.run(&all).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("larder admin {all:?} --json is not JSON ({e}): {stdout}"))
    }
}

/// A table: the header cells and the rows, cells split on runs of two or
/// more spaces (cells such as "4.6 KiB" hold single spaces).
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Finds the table whose header starts with `first` in `stdout`; its rows
/// are the lines after it up to the first line that is not a row.
fn table(stdout: &str, header: &[&str]) -> Table {
    let mut lines = stdout.lines();
    let head = lines
        .by_ref()
        .find(|l| l.starts_with(header[0]))
        .unwrap_or_else(|| panic!("no table with header {header:?} in:\n{stdout}"));
    assert_eq!(cells(head), header, "table header in:\n{stdout}");
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("more:"))
        .map(cells)
        .collect();
    Table {
        header: header.iter().map(|s| s.to_string()).collect(),
        rows,
    }
}

impl Table {
    /// The row whose column `key` is `value`.
    fn row(&self, key: &str, value: &str) -> Vec<String> {
        let i = self.col(key);
        self.rows
            .iter()
            .find(|r| r.get(i).is_some_and(|c| c == value))
            .cloned()
            .unwrap_or_else(|| panic!("no row with {key} = {value}: {:?}", self.rows))
    }

    fn col(&self, key: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == key)
            .unwrap_or_else(|| panic!("no column {key}"))
    }

    fn cell<'a>(&self, row: &'a [String], key: &str) -> &'a str {
        &row[self.col(key)]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_namespaces_and_entries_as_tables_and_json() {
    let (server, token) = server(|_| {}).await;
    let base = server.base();
    let c = bearer(&token);
    let a1 = push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    let a2 = push_image(&c, &base, "team-a/app", Some("v2"), 2, 3).await;
    let b1 = push_image(&c, &base, "team-b/app", Some("v1"), 3, 2).await;
    let api = AdminApi::with_token(&base, &token);
    let cli = Cli::new(&server, &token);

    // stats
    let out = cli.run(&["stats"]).await;
    assert!(
        out.contains(&format!("version {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("(12 blobs)"), "3 + 5 + 4 blobs:\n{out}");
    let t = table(&out, &["PROTOCOL", "ENTRIES", "HITS", "MISSES", "SERVED"]);
    let oci = t.row("PROTOCOL", "oci");
    assert_eq!(t.cell(&oci, "ENTRIES"), "3", "{out}");
    assert_eq!(t.cell(&t.row("PROTOCOL", "gha"), "ENTRIES"), "0", "{out}");
    let json = cli.json(&["stats"]).await;
    let from_api = api.stats().await;
    for key in [
        "used_bytes",
        "max_bytes",
        "blobs",
        "entries",
        "namespaces",
        "evictions",
    ] {
        assert_eq!(json[key], from_api[key], "stats --json {key}: {json}");
    }
    assert_eq!(num(&json["entries"]["oci"], "entries.oci"), 3);

    // namespaces
    let out = cli.run(&["namespaces"]).await;
    let t = table(
        &out,
        &["NAMESPACE", "USED", "QUOTA", "ENTRIES", "LAST USED"],
    );
    let a = t.row("NAMESPACE", "team-a");
    let b = t.row("NAMESPACE", "team-b");
    assert_eq!(t.cell(&a, "ENTRIES"), "2", "{out}");
    assert_eq!(t.cell(&b, "ENTRIES"), "1", "{out}");
    assert_eq!(t.cell(&b, "QUOTA"), "-", "team-b has no quota:\n{out}");
    assert!(t.cell(&a, "QUOTA").contains("64"), "team-a's quota:\n{out}");
    assert_recent(
        &Value::String(t.cell(&a, "LAST USED").to_owned()),
        Duration::from_secs(120),
        "LAST USED",
    );
    let json = cli.json(&["namespaces"]).await;
    assert_eq!(json, api.get_ok("/admin/v1/namespaces").await);

    // entries
    let header = ["ID", "PROTOCOL", "NAMESPACE", "NAME", "SIZE", "LAST USED"];
    let out = cli.run(&["entries"]).await;
    let t = table(&out, &header);
    assert_eq!(t.rows.len(), 3, "{out}");
    let names = |t: &Table| -> Vec<String> {
        t.rows
            .iter()
            .map(|r| t.cell(r, "NAME").to_owned())
            .collect()
    };
    let (n1, n2, n3) = (
        format!("team-a/app@{}", a1.digest),
        format!("team-a/app@{}", a2.digest),
        format!("team-b/app@{}", b1.digest),
    );
    assert_eq!(
        names(&t),
        [n1.as_str(), n2.as_str(), n3.as_str()],
        "lru order by default:\n{out}"
    );
    assert!(t.rows.iter().all(|r| t.cell(r, "PROTOCOL") == "oci"));
    assert!(!out.contains("more:"), "everything fits one page:\n{out}");

    let out = cli.run(&["entries", "--namespace", "team-b"]).await;
    let t = table(&out, &header);
    assert_eq!(names(&t), [n3.as_str()], "{out}");
    assert_eq!(t.cell(&t.rows[0], "NAMESPACE"), "team-b");
    let out = cli.run(&["entries", "--protocol", "gha"]).await;
    assert!(table(&out, &header).rows.is_empty(), "{out}");

    // Largest first, one at a time, following the printed cursor.
    let out = cli
        .run(&["entries", "--order", "size", "--limit", "1"])
        .await;
    assert_eq!(names(&table(&out, &header)), [n2.as_str()], "{out}");
    let cursor = out
        .lines()
        .find_map(|l| l.strip_prefix("more: --cursor "))
        .unwrap_or_else(|| panic!("a next page is announced:\n{out}"))
        .trim()
        .to_owned();
    let out = cli
        .run(&[
            "entries", "--order", "size", "--limit", "1", "--cursor", &cursor,
        ])
        .await;
    assert_eq!(names(&table(&out, &header)), [n3.as_str()], "{out}");

    let json = cli
        .json(&[
            "entries",
            "--protocol",
            "oci",
            "--order",
            "mru",
            "--limit",
            "2",
        ])
        .await;
    let listed: Vec<&str> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [n3.as_str(), n2.as_str()], "{json}");
    let next = json["next_cursor"].as_str().expect("a next cursor");
    let json = cli
        .json(&[
            "entries", "--order", "mru", "--limit", "2", "--cursor", next,
        ])
        .await;
    assert_eq!(json["entries"][0]["name"], n1.as_str(), "{json}");
    assert_eq!(json["next_cursor"], Value::Null, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_purge_and_evict_as_tables_and_json() {
    let (server, token) = server(|_| {}).await;
    let base = server.base();
    let c = bearer(&token);
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    push_image(&c, &base, "team-a/lib", Some("v1"), 2, 1).await;
    let b = push_image(&c, &base, "team-b/app", Some("v1"), 3, 2).await;
    let stray = fixed_bytes(77, 4321);
    push_blob(&c, &base, "team-b/app", &stray).await;
    outlive_lease(LEASE).await;
    let api = AdminApi::with_token(&base, &token);
    let cli = Cli::new(&server, &token);

    // gc: the unreferenced blob goes.
    let out = cli.run(&["gc"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"blobs_removed: 1"), "{out}");
    assert!(
        lines.contains(&format!("bytes_freed: {}", stray.len()).as_str()),
        "{out}"
    );
    let json = cli.json(&["gc"]).await;
    assert_eq!(num(&json["blobs_removed"], "blobs_removed"), 0, "{json}");
    assert_eq!(
        json["usage_after"],
        api.stats().await["used_bytes"],
        "{json}"
    );

    // purge: only team-a's entries.
    let out = cli.run(&["purge", "team-a"]).await;
    assert_eq!(out, "removed 2 entries from team-a\n");
    assert!(api.all_entries("namespace=team-a", 100).await.is_empty());
    assert_eq!(api.all_entries("", 100).await.len(), 1);
    let json = cli.json(&["purge", "nobody"]).await;
    assert_eq!(json["namespace"], "nobody", "{json}");
    assert_eq!(
        num(&json["entries_removed"], "entries_removed"),
        0,
        "{json}"
    );

    // evict --target 0: team-a's unpinned blobs, then team-b's entry.
    let out = cli.run(&["evict", "--target", "0"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"entries_removed: 1"), "{out}");
    assert!(lines.contains(&"usage_after: 0"), "{out}");
    assert!(lines.contains(&"bytes_leased: 0"), "{out}");
    let stats = api.stats().await;
    assert_eq!(num(&stats["used_bytes"], "used_bytes"), 0, "{stats}");
    let res = c
        .get(format!("{base}/v2/team-b/app/manifests/{}", b.digest))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let json = cli.json(&["evict", "--target", "1GiB"]).await;
    assert_eq!(
        num(&json["entries_removed"], "entries_removed"),
        0,
        "{json}"
    );
    assert_eq!(num(&json["usage_after"], "usage_after"), 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_create_list_and_revoke() {
    let (server, admin) = server(|_| {}).await;
    let base = server.base();
    let cli = Cli::new(&server, &admin);

    // create, as printed for humans: a comment naming the id, then the token.
    let out = cli
        .run(&[
            "tokens",
            "create",
            "--namespace",
            "team-a",
            "--read",
            "--write",
            "--ttl",
            "1h",
            "--name",
            "ci",
        ])
        .await;
    let mut lines = out.lines();
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("# token id "))
        .unwrap_or_else(|| panic!("first line names the id:\n{out}"))
        .to_owned();
    let token = lines.next().expect("the token line").to_owned();
    assert_eq!(lines.next(), None, "{out}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let user = bearer(&token);
    push_image(&user, &base, "team-a/app", Some("v1"), 1, 1).await;

    // create --json
    let json = cli
        .json(&["tokens", "create", "--namespace", "team-b", "--read"])
        .await;
    let id2 = json["id"].as_str().expect("id").to_owned();
    let token2 = json["token"].as_str().expect("token").to_owned();
    num(&json["expires_at"], "expires_at");

    // list: metadata, never a secret.
    let out = cli.run(&["tokens", "list"]).await;
    for secret in [&token, &token2] {
        assert!(
            !out.contains(secret.as_str()),
            "the listing shows a token:\n{out}"
        );
    }
    let t = table(&out, TOKEN_COLUMNS);
    let row = t.row("ID", &id);
    assert_eq!(t.cell(&row, "NAME"), "ci");
    assert_eq!(t.cell(&row, "NAMESPACES"), "team-a");
    assert_eq!(t.cell(&row, "PERMISSIONS"), "read,write");
    assert_eq!(t.cell(&row, "STATE"), "active");
    assert_eq!(
        t.cell(&row, "EXPIRES"),
        larder::auth::token::rfc3339(num(
            &created_json(&cli, &id).await["expires_at"],
            "expires_at"
        ))
    );
    // The first token pushed an image: its use is shown at once.
    assert_recent_rfc3339(t.cell(&row, "LAST USED"));
    let row2 = t.row("ID", &id2);
    assert_eq!(t.cell(&row2, "PERMISSIONS"), "read");
    assert_eq!(t.cell(&row2, "LAST USED"), "never", "{out}");
    let listing = cli.run(&["--json", "tokens", "list"]).await;
    assert!(!listing.contains(&token) && !listing.contains(&token2));
    let json: Value = serde_json::from_str(&listing).expect("tokens list --json");
    let ids: Vec<&str> = json["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&id2.as_str()),
        "{json}"
    );

    // revoke: the token stops working at once.
    let out = cli.run(&["tokens", "revoke", &id]).await;
    assert_eq!(out, format!("revoked {id}\n"));
    let res = user
        .get(format!("{base}/v2/team-a/app/manifests/v1"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    expect_unauthorized(res, &base).await;
    let out = cli.run(&["tokens", "list"]).await;
    let t = table(&out, TOKEN_COLUMNS);
    assert_eq!(t.cell(&t.row("ID", &id), "STATE"), "revoked", "{out}");
    assert_eq!(t.cell(&t.row("ID", &id2), "STATE"), "active", "{out}");
    let json = cli.json(&["tokens", "revoke", &id2]).await;
    assert!(json.is_object(), "{json}");
    let json = cli.json(&["tokens", "list"]).await;
    for t in json["tokens"].as_array().unwrap() {
        if t["id"] == id.as_str() || t["id"] == id2.as_str() {
            assert_eq!(t["revoked"], true, "{json}");
        }
    }
}

const TOKEN_COLUMNS: &[&str] = &[
    "ID",
    "NAME",
    "NAMESPACES",
    "PERMISSIONS",
    "EXPIRES",
    "LAST USED",
    "STATE",
];

/// The `tokens list --json` record of `id`.
async fn created_json(cli: &Cli, id: &str) -> Value {
    let list = cli.json(&["tokens", "list"]).await;
    list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("token {id} is not listed: {list}"))
}

/// An RFC 3339 time within the last minute.
fn assert_recent_rfc3339(cell: &str) {
    let at = humantime::parse_rfc3339(cell)
        .unwrap_or_else(|e| panic!("{cell:?} is not an RFC 3339 time: {e}"));
    let age = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{cell} is not recent");
}

/// A token minted offline with the server's key is listed (with its last
/// use) once the server has verified it; an id the server never saw is not
/// revoked by mistake (404, non-zero exit), unless forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_tokens_are_listed_once_used_and_unknown_ids_are_not_revoked() {
    let (server, key) = token_server(|_| {}).await;
    let cli = Cli::new(&server, &admin_token(&key));
    let (offline, claims) = auth_support::token_claims(&key, &[("team-a", auth_support::RW)], 3600);

    let list = cli.json(&["tokens", "list"]).await;
    assert!(
        !list.to_string().contains(&claims.jti),
        "not listed before the server has seen it: {list}"
    );
    let res = bearer(&offline)
        .get(format!("{}/v2/team-a/app/tags/list", server.base()))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::UNAUTHORIZED);
    let out = cli.run(&["tokens", "list"]).await;
    assert!(
        out.contains("listed once this server has verified them"),
        "{out}"
    );
    let t = table(&out, TOKEN_COLUMNS);
    let row = t.row("ID", &claims.jti);
    assert_eq!(t.cell(&row, "NAME"), "test");
    assert_eq!(t.cell(&row, "NAMESPACES"), "team-a");
    assert_eq!(t.cell(&row, "PERMISSIONS"), "read,write");
    assert_eq!(
        t.cell(&row, "EXPIRES"),
        larder::auth::token::rfc3339(claims.exp)
    );
    assert_eq!(t.cell(&row, "STATE"), "active");
    assert_recent_rfc3339(t.cell(&row, "LAST USED"));

    // An unknown id: the API's 404, the CLI's message and a failed exit.
    let unknown = "0123456789abcdef0123456789abcdef";
    AdminApi::with_token(&server.base(), &cli.token)
        .delete(&format!("/admin/v1/tokens/{unknown}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    let out = larder(
        &["admin", "tokens", "revoke", unknown],
        &[("LARDER_URL", &cli.url), ("LARDER_TOKEN", &cli.token)],
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "revoking an unknown id fails");
    assert!(
        stderr.contains("404") && stderr.contains(unknown),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "says how to insist: {stderr}");
    assert!(
        !text(&out.stdout).contains("revoked"),
        "{}",
        text(&out.stdout)
    );
    // Forced, it is revoked (and stays a known id: revoking again succeeds).
    assert_eq!(
        cli.run(&["tokens", "revoke", "--force", unknown]).await,
        format!("revoked {unknown}\n")
    );
    cli.run(&["tokens", "revoke", unknown]).await;

    // The offline token, now known, is revoked without --force.
    cli.run(&["tokens", "revoke", &claims.jti]).await;
    let res = bearer(&offline)
        .get(format!("{}/v2/team-a/app/tags/list", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_token_come_from_flags_or_environment_and_refusals_fail() {
    let (server, admin) = server(|_| {}).await;
    let base = server.base();

    // Flags instead of the environment.
    let out = larder(&["admin", "--url", &base, "--token", &admin, "stats"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("PROTOCOL"));
    // The environment alone.
    let out = larder(
        &["admin", "--json", "namespaces"],
        &[("LARDER_URL", &base), ("LARDER_TOKEN", &admin)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).expect("JSON");

    // Refusals: non-zero, nothing on stdout, the status and the server's own
    // message on stderr.
    let key = auth_support::read_key(&server.data_dir().join("signing.key"));
    let user = user_token(&key);
    for (who, token, status) in [
        (
            "a malformed token",
            Some("garbage"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a forged token",
            Some("e30.e30.c2ln"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a non-admin token",
            Some(user.as_str()),
            StatusCode::FORBIDDEN,
        ),
        ("no token", None, StatusCode::UNAUTHORIZED),
    ] {
        let api = match token {
            Some(t) => AdminApi::with_token(&base, t),
            None => AdminApi::anonymous(&base),
        };
        let message = api.get("/admin/v1/stats").await.expect_error(status, None);
        let mut env = vec![("LARDER_URL", base.as_str())];
        if let Some(t) = token {
            env.push(("LARDER_TOKEN", t));
        }
        let out = larder(&["admin", "stats"], &env).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{who}: exit {}", out.status);
        assert!(stdout.is_empty(), "{who}: stdout {stdout:?}");
        assert!(
            stderr.contains(&message),
            "{who}: stderr {stderr:?} lacks the server's message {message:?}"
        );
        assert!(
            stderr.contains(status.as_str()),
            "{who}: stderr {stderr:?} lacks the status {status}"
        );
    }

    // An unreachable server.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = larder(&["admin", "--url", &dead, "--token", &admin, "stats"], &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&dead),
        "names the server it could not reach: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_to_a_target_leases_keep_from_reach_says_what_holds_the_rest_and_fails() {
    let (server, token) = server(|cfg| cfg.gc.lease = Span::secs(600)).await;
    let base = server.base();
    let c = bearer(&token);
    push_image(&c, &base, "team-b/app", Some("v1"), 3, 2).await;
    let used = AdminApi::with_token(&base, &token).stats().await["used_bytes"].clone();
    // An import resolves the image: every blob it pins is leased.
    let res = c
        .get(format!("{base}/v2/team-b/app/manifests/v1"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let out = larder(
        &["admin", "evict", "--target", "0"],
        &[("LARDER_URL", &base), ("LARDER_TOKEN", &token)],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.lines().any(|l| l == "entries_removed: 1"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "reached: false"), "{stdout}");
    assert!(
        stderr.contains("still above the target") && stderr.contains("held by leases"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(": {used} bytes held by leases")),
        "{stderr}"
    );
}

/// `admin entries delete ID` removes one entry through the API's
/// `DELETE entries/{id}` and shows what went; an id that is gone fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_delete_removes_one_entry_by_id() {
    let (server, token) = server(|_| {}).await;
    let base = server.base();
    let c = bearer(&token);
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    push_image(&c, &base, "team-b/app", Some("v1"), 2, 1).await;
    let cli = Cli::new(&server, &token);
    let listed = cli.json(&["entries", "--namespace", "team-a"]).await;
    let victim = listed["entries"][0]["id"].as_u64().expect("an entry id");
    let before = cli.json(&["entries"]).await["entries"]
        .as_array()
        .unwrap()
        .len();

    let out = cli.run(&["entries", "delete", &victim.to_string()]).await;
    assert!(out.starts_with("removed "), "{out}");
    let t = table(
        &out,
        &["ID", "PROTOCOL", "NAMESPACE", "NAME", "SIZE", "LAST USED"],
    );
    assert_eq!(
        t.cell(&t.row("ID", &victim.to_string()), "NAMESPACE"),
        "team-a"
    );
    let removed = t.rows.len();
    let after = cli.json(&["entries"]).await;
    let ids: Vec<u64> = after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert!(!ids.contains(&victim), "{after}");
    assert_eq!(ids.len(), before - removed, "only what it reported went");
    assert!(
        after["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["namespace"] == "team-b"),
        "{after}"
    );

    let out = larder(
        &["admin", "entries", "delete", &victim.to_string()],
        &[("LARDER_URL", &cli.url), ("LARDER_TOKEN", &cli.token)],
    )
    .await;
    assert!(!out.status.success(), "deleting it again fails");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");
}

/// `admin workers` shows the API's worker board as a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_shown_as_a_table_and_json() {
    let (server, token) = server(|_| {}).await;
    let cli = Cli::new(&server, &token);
    let api = AdminApi::with_token(&server.base(), &token);
    let ran = eventually(Duration::from_secs(20), || {
        let api = api.clone();
        async move {
            let body = api.get_ok("/admin/v1/workers").await;
            body["workers"]
                .as_object()
                .is_some_and(|w| w.values().any(|s| s["runs"].as_u64() > Some(0)))
        }
    })
    .await;
    assert!(ran, "some worker ran");
    let json = cli.json(&["workers"]).await;
    let out = cli.run(&["workers"]).await;
    let t = table(
        &out,
        &[
            "WORKER",
            "RUNS",
            "FAILURES",
            "EVERY",
            "LAST RUN",
            "TOOK",
            "LAST ERROR",
        ],
    );
    let workers = json["workers"].as_object().expect("workers");
    assert!(!workers.is_empty(), "{json}");
    for (name, s) in workers {
        let row = t.row("WORKER", name);
        let runs: u64 = t.cell(&row, "RUNS").parse().expect("RUNS is a number");
        assert!(runs >= num(&s["runs"], "runs"), "{name}: {out}");
        assert_eq!(t.cell(&row, "FAILURES"), s["failures"].to_string());
        assert_eq!(
            t.cell(&row, "EVERY"),
            format!("{}s", num(&s["every_secs"], "every_secs"))
        );
    }
}
