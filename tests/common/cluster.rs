//! The clustered topology of `TestServer` (LARDER_TEST_CLUSTER=1): what its
//! replicas share. One PostgreSQL and one moto server serve the whole test
//! process, started on first use (each costs seconds, a test binary starts
//! many servers) and stopped when the process exits; each `TestServer` gets
//! a database and a bucket of its own, so tests stay independent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use larder::cluster::pg;
use larder::config::{ClusterConfig, Span};

use super::postgres::{postgres_bin, Postgres};
use super::s3::S3Server;

/// True when the real-client tests run against a cluster of replicas.
pub fn enabled() -> bool {
    std::env::var("LARDER_TEST_CLUSTER").is_ok_and(|v| v == "1")
}

/// True when PostgreSQL and moto_server are installed; else skips (fails
/// under CI=true) for a test that needs a cluster whatever
/// LARDER_TEST_CLUSTER says.
pub fn available() -> bool {
    if postgres_bin().is_none() {
        super::skip("PostgreSQL's initdb is not installed (apt install postgresql)");
        return false;
    }
    super::require_tool("moto_server").is_some()
}

pub struct Backends {
    pub db: Postgres,
    pub s3: S3Server,
}

static BACKENDS: Mutex<Option<Arc<Backends>>> = Mutex::new(None);
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn lock() -> MutexGuard<'static, Option<Arc<Backends>>> {
    BACKENDS.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's PostgreSQL and moto servers, started if need be.
pub async fn backends() -> Arc<Backends> {
    // Starting them blocks (initdb, pg_ctl, moto's first listen).
    tokio::task::spawn_blocking(|| {
        let mut shared = lock();
        if let Some(b) = &*shared {
            return b.clone();
        }
        // Asked for explicitly, so a missing server fails rather than skips.
        assert!(
            postgres_bin().is_some() && super::on_path("moto_server").is_some(),
            "LARDER_TEST_CLUSTER=1 needs PostgreSQL's server programs \
             (apt install postgresql) and moto_server (pip install 'moto[server]')"
        );
        let (db, s3) = std::thread::scope(|s| {
            let db = s.spawn(Postgres::start);
            (db.join().expect("PostgreSQL starts"), S3Server::start())
        });
        let b = Arc::new(Backends {
            db: db.expect("PostgreSQL starts"),
            s3: s3.expect("moto_server starts"),
        });
        *shared = Some(b.clone());
        // SAFETY: `stop` is a plain function that catches every panic.
        unsafe { libc::atexit(stop) };
        b
    })
    .await
    .expect("starting PostgreSQL and moto")
}

/// Statics are never dropped: stop the servers (their `Drop`) at exit,
/// or they would outlive the test run.
extern "C" fn stop() {
    let _ = std::panic::catch_unwind(|| drop(lock().take()));
}

/// Cluster settings on a database and a bucket no other server uses, named
/// `t<n>`/`larder-t<n>`, replica id and everything else left to the caller.
pub async fn fresh(b: &Backends) -> ClusterConfig {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let database = format!("t{n}");
    let bucket = format!("larder-t{n}");
    let settings = pg::settings(&b.db.config(), "larder-tests").expect("settings");
    let admin = pg::connect(&settings).await.expect("connect to PostgreSQL");
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("create database");
    b.s3.create_bucket(&bucket).await;
    let mut postgres = b.db.config_for(&database);
    // Room for a client's concurrent requests (skopeo pushes layers at
    // once) on each of two replicas, within the server's max_connections.
    postgres.pool_size = 8;
    let mut s3 = b.s3.config(&bucket);
    // moto shares two cores with the clients: the production default,
    // rather than the 2 s the fault tests use to see a hung store fast.
    s3.request_timeout = Span::secs(30);
    ClusterConfig {
        enabled: true,
        s3,
        postgres,
        ..ClusterConfig::default()
    }
}
