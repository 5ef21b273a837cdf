//! Wires the data dir, the store and the router; serves until a shutdown
//! signal, drains in-flight requests up to a deadline, flushes the index.

mod body_rate;
mod conn;
pub mod file_body;
mod linger;
mod phase;
mod sendfile;
mod service;
mod tls;
mod tls_reload;
mod watched;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::{Auth, Records};
use crate::backend::Backend;
use crate::cache::Store;
use crate::cluster::replica::Replica;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::workers::Workers;

/// A bound, not yet serving, server. Binding first lets callers (tests, the
/// CLI) learn the real address of `127.0.0.1:0` before requests arrive.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Option<tls::Tls>,
    state: AppState,
    engine: Engine,
    // Dropped last: the lock must outlive every write to the data dir.
    data_dir: DataDir,
}

/// What holds the data, with what its workers need.
enum Engine {
    Local(Arc<Store>),
    Cluster(Box<Replica>),
}

impl Server {
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let data_dir = DataDir::open(&config.storage.data_dir)?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let (engine, store, auth) = if config.cluster.enabled {
            let address = match &config.server.public_url {
                Some(url) => url.clone(),
                None => listener.local_addr()?.to_string(),
            };
            let replica = Replica::open(&config, data_dir.root(), address)
                .await
                .context("joining the cluster")?;
            let store = replica.store.clone();
            let auth = Auth::new(
                &config,
                replica.signing_key.clone(),
                Records::Cluster(store.clone()),
            );
            (
                Engine::Cluster(Box::new(replica)),
                Backend::Cluster(store),
                auth,
            )
        } else {
            let store = Store::open(&data_dir, &config)
                .with_context(|| format!("opening the store in {}", data_dir.root().display()))?;
            let key_path = crate::auth::key::key_path(&config);
            let key = crate::auth::key::load_or_create(&key_path)?;
            let auth = Auth::new(&config, key, Records::Index(store.index().clone()));
            let store = Arc::new(store);
            (Engine::Local(store.clone()), Backend::Local(store), auth)
        };
        let tls = tls::Tls::load(&config.server)?;
        let proxies = crate::api::proxy::Proxies::new(&config.proxy)?;
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics.listen {addr}"))?,
            ),
            None => None,
        };
        Ok(Server {
            listener,
            metrics_listener,
            tls,
            state: AppState {
                config: Arc::new(config),
                store,
                auth: Arc::new(auth),
                metrics: Arc::default(),
                workers: Arc::default(),
                creations: Arc::default(),
                proxies: Arc::new(proxies),
            },
            engine,
            data_dir,
        })
    }

    /// The address of the separate metrics port, if `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish for up to `server.shutdown_timeout`, and flushes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            listener,
            metrics_listener,
            mut tls,
            state,
            engine,
            data_dir,
        } = self;
        let addr = listener.local_addr()?;
        let reload_stop = tokio_util::sync::CancellationToken::new();
        let reloader = tls.as_mut().and_then(|t| t.watch(reload_stop.clone()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, %scheme, data_dir = %data_dir.root().display(), "listening");
        let timeout = state.config.server.shutdown_timeout.0;
        let limits = conn::Limits::new(&state.config.server);
        let (board, metrics) = (state.workers.clone(), state.metrics.clone());
        let (workers, local) = match engine {
            Engine::Local(store) => (
                Workers::start(store.clone(), &state.config, board, metrics),
                Some(store),
            ),
            Engine::Cluster(replica) => (
                Workers::start_cluster(*replica, &state.config, board, metrics),
                None,
            ),
        };

        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = started_tx.send(());
        };
        let deadline = async move {
            match started_rx.await {
                Ok(()) => tokio::time::sleep(timeout).await,
                Err(_) => std::future::pending().await,
            }
        };
        // An optional second port for /metrics only, so scrapers can be let
        // in where the cache API is not.
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_task = match metrics_listener {
            Some(l) => {
                tracing::info!(addr = %l.local_addr()?, "serving metrics");
                let app = api::App::routed(
                    axum::Router::new()
                        .route("/metrics", axum::routing::get(api::observe::metrics))
                        .with_state(state.clone()),
                );
                let metrics = state.metrics.clone();
                Some(tokio::spawn(conn::serve(
                    l,
                    app,
                    limits,
                    metrics,
                    // Plain HTTP: scrapers on a private port rarely speak TLS.
                    None,
                    async move {
                        let _ = metrics_stopped.await;
                    },
                )))
            }
            None => None,
        };
        let metrics = state.metrics.clone();
        let auth = state.auth.clone();
        let app = api::App::new(state);
        tokio::select! {
            () = conn::serve(listener, app, limits, metrics, tls.as_ref().map(tls::Tls::acceptor), graceful) => {}
            () = deadline => tracing::warn!(
                timeout = %humantime::format_duration(timeout),
                "in-flight requests did not finish in time; closing them"
            ),
        }
        let _ = metrics_stop.send(());
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        reload_stop.cancel();
        if let Some(t) = reloader {
            let _ = t.await;
        }
        workers.stop().await;
        auth.flush_usage();
        // Every acknowledged write was flushed before its acknowledgement;
        // what a failed flush here loses (recency, leftovers the next start
        // removes) is not worth a failed exit after a clean drain.
        if let Some(store) = local {
            close(store).await;
        }
        tracing::info!("stopped");
        drop(data_dir);
        Ok(())
    }
}

/// Makes the embedded store durable and closes it.
async fn close(store: Arc<Store>) {
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "flushing the index at shutdown failed; acknowledged writes were already durable");
    }
    match Arc::try_unwrap(store) {
        Ok(store) => {
            if let Err(e) = store.close().await {
                tracing::error!(error = %e, "closing the index failed; acknowledged writes were already durable");
            }
        }
        // Requests cut at the deadline may still hold it; the flush above
        // already made every acknowledged write durable.
        Err(_) => tracing::warn!("requests still hold the store; the index closes at exit"),
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives
/// while the server is still starting is not lost (nor fatal).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                tracing::error!(
                    ?term,
                    ?int,
                    "cannot listen for signals; only Ctrl-C stops the server"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
