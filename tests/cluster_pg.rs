//! Cluster mode's PostgreSQL side against a real server: versioned
//! migrations, leader election by advisory lock, replica heartbeats and
//! `larder cluster migrate|status`.

mod cluster_support;
mod common;
mod tls_support;

use std::time::Duration;

use cluster_support::{Postgres, S3Server};
use larder::cluster::leader::{self, Leadership};
use larder::cluster::replicas::{self, Me};
use larder::cluster::{pg, schema, ClusterError};

async fn client(db: &Postgres, app: &str) -> tokio_postgres::Client {
    pg::connect(&pg::settings(&db.config(), app).unwrap())
        .await
        .expect("connect")
}

/// Waits (at most 20 s, far beyond the election's seconds) for `lead` to
/// become `leading`.
async fn until(lead: &mut Leadership, leading: bool) {
    tokio::time::timeout(Duration::from_secs(20), lead.changed_to(leading))
        .await
        .unwrap_or_else(|_| panic!("leadership never became {leading}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_even_when_replicas_start_together() {
    let Some(db) = Postgres::start() else { return };
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(client(&db, &format!("m{i}")).await);
    }
    let runs = clients
        .iter_mut()
        .enumerate()
        .map(|(i, c)| async move { schema::migrate(c, &format!("replica {i}")).await });
    let results = futures_util::future::join_all(runs).await;
    let mut from_zero = 0;
    for r in results {
        let m = r.expect("migrate");
        assert_eq!(m.to, schema::latest());
        if m.from == 0 {
            from_zero += 1;
        }
    }
    assert_eq!(from_zero, 1, "exactly one replica applies the migrations");
    let c = &clients[0];
    let rows: i64 = c
        .query_one("SELECT count(*) FROM larder_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, i64::from(schema::latest()));
    schema::check(c).await.expect("schema is current");
    // The model's tables are there.
    for table in [
        "blobs",
        "entries",
        "entry_pins",
        "leases",
        "uploads",
        "upload_parts",
    ] {
        let found: bool = c
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(found, "table {table}");
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = Postgres::start() else { return };
    let mut c = client(&db, "t").await;
    assert!(matches!(
        schema::check(&c).await,
        Err(ClusterError::SchemaOlder { found: 0, .. })
    ));
    schema::migrate(&mut c, "test").await.unwrap();
    let newer = schema::latest() + 1;
    c.execute(
        "INSERT INTO larder_schema (version, name, applied_by) VALUES ($1, 'future', 'test')",
        &[&newer],
    )
    .await
    .unwrap();
    let err = schema::migrate(&mut c, "test").await.unwrap_err();
    assert!(
        matches!(err, ClusterError::SchemaNewer { found, .. } if found == newer),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
    assert!(matches!(
        schema::check(&c).await,
        Err(ClusterError::SchemaNewer { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_another_takes_over_when_its_session_ends() {
    let Some(db) = Postgres::start() else { return };
    let retry = Duration::from_millis(200);
    let settings =
        |r: &str| pg::settings(&db.config(), &larder::cluster::application_name(r)).unwrap();
    let mut a = Leadership::start(settings("a"), retry);
    until(&mut a, true).await;
    let mut b = Leadership::start(settings("b"), retry);
    let mut c = Leadership::start(settings("c"), retry);
    let observer = client(&db, "observer").await;
    // b and c have tried (and failed) at least once when they are connected
    // and a still holds the lock; give them three rounds to be sure.
    tokio::time::sleep(retry * 3).await;
    assert!(a.is_leader() && !b.is_leader() && !c.is_leader());
    assert_eq!(
        leader::holder(&observer).await.unwrap().as_deref(),
        Some("larder/a")
    );

    // The leader process dies: its session, and the lock, go with it.
    drop(a);
    let new = tokio::select! {
        _ = until(&mut b, true) => "b",
        _ = until(&mut c, true) => "c",
    };
    assert!(!(b.is_leader() && c.is_leader()), "two leaders");
    assert_eq!(
        leader::holder(&observer).await.unwrap(),
        Some(format!("larder/{new}"))
    );

    // The database ends the leader's session (a network cut, an operator's
    // pg_terminate_backend): it steps down and the other one leads.
    let (leading, other) = if new == "b" {
        (&mut b, &mut c)
    } else {
        (&mut c, &mut b)
    };
    observer
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("larder/{new}")],
        )
        .await
        .unwrap();
    until(leading, false).await;
    until(other, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_after_postgres_restarts() {
    let Some(db) = Postgres::start() else { return };
    let retry = Duration::from_millis(200);
    let mut a = Leadership::start(pg::settings(&db.config(), "larder/a").unwrap(), retry);
    until(&mut a, true).await;
    db.stop();
    until(&mut a, false).await;
    db.start_again();
    until(&mut a, true).await;
}

#[tokio::test]
async fn heartbeats_show_replicas_and_status_reports_them() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("larder.toml");
    let write_config = |bucket: &str| {
        std::fs::write(
            &config,
            format!(
                "[cluster]\nheartbeat_interval = \"1s\"\n\
                 [cluster.postgres]\nurl = \"{}\"\n\
                 [cluster.s3]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nallow_http = true\n\
                 access_key_id = \"k\"\nsecret_access_key = \"s\"\n",
                db.url(),
                s3.endpoint()
            ),
        )
        .unwrap()
    };
    write_config("larder");
    let cli = |args: &[&str]| {
        std::process::Command::new(common::process::larder_bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run larder")
    };
    let out = cli(&["cluster", "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("schema migrated from version 0 to {}\n", schema::latest())
    );
    let out = cli(&["cluster", "migrate"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already at version"));

    let c = client(&db, "t").await;
    for (id, address) in [("r1", "10.0.0.1:5000"), ("r2", "10.0.0.2:5000")] {
        let me = Me {
            id: id.into(),
            address: address.into(),
        };
        replicas::beat(&c, &me).await.unwrap();
    }
    // r2 went silent long ago.
    c.execute(
        "UPDATE larder_replicas SET seen_at = now() - interval '1 hour' WHERE id = 'r2'",
        &[],
    )
    .await
    .unwrap();
    let mut lead = Leadership::start(
        pg::settings(&db.config(), "larder/r1").unwrap(),
        Duration::from_millis(100),
    );
    until(&mut lead, true).await;

    let out = cli(&["cluster", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["leader"], "r1");
    assert_eq!(status["bucket"], "reachable");
    assert_eq!(status["schema_version"], schema::latest());
    let replicas = status["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    assert_eq!(replicas[0]["id"], "r1");
    assert_eq!(replicas[0]["alive"], true);
    assert_eq!(replicas[0]["address"], "10.0.0.1:5000");
    assert_eq!(replicas[1]["alive"], false);

    let out = cli(&["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("leader: r1"), "{text}");
    assert!(
        text.contains("r2  10.0.0.2:5000") && text.contains("(gone)"),
        "{text}"
    );

    write_config("no-such-bucket");
    let out = cli(&["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bucket: unreachable"), "{text}");
}

#[test]
fn cluster_commands_need_a_database_url() {
    let out = std::process::Command::new(common::process::larder_bin())
        .args(["cluster", "status"])
        .env_remove("LARDER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster.postgres.url: must be set"));
}

#[test]
fn a_replica_whose_database_is_unreachable_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = std::process::Command::new(common::process::larder_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LARDER__CLUSTER__ENABLED", "true")
        .env("LARDER__CLUSTER__S3__BUCKET", "b")
        .env(
            "LARDER__CLUSTER__POSTGRES__URL",
            format!("postgres://larder@127.0.0.1:{port}/larder"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("joining the cluster"), "{stderr}");
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_configured_ca() {
    let ca = tls_support::TestCa::new();
    let leaf = ca.leaf("postgres");
    let Some(db) = Postgres::start_tls(&leaf.cert, &leaf.key) else {
        return;
    };
    let ssl_of = |c: tokio_postgres::Client| async move {
        let on: bool = c
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        on
    };
    let with = |sslmode: &str, ca_file: Option<std::path::PathBuf>| {
        let mut cfg = db.config();
        cfg.url = format!("{} sslmode={sslmode}", db.url());
        cfg.ca_file = ca_file;
        pg::settings(&cfg, "t").unwrap()
    };
    let ca_file = ca.dir.path().join("ca.crt");

    let c = pg::connect(&with("require", Some(ca_file.clone())))
        .await
        .unwrap();
    assert!(ssl_of(c).await, "sslmode=require with the CA: encrypted");
    // libpq's default, prefer, takes TLS when the server offers it.
    let c = pg::connect(&with("prefer", Some(ca_file))).await.unwrap();
    assert!(ssl_of(c).await);
    // The system's roots do not know this CA: no session, not a silent
    // fallback to an unverified one.
    let err = pg::connect(&with("require", None))
        .await
        .expect_err("refused");
    assert!(format!("{err:?}").contains("Certificate"), "{err:?}");
    let c = pg::connect(&with("disable", None)).await.unwrap();
    assert!(!ssl_of(c).await, "sslmode=disable: plain");
}
