//! The connection that hears the database's changes for the memo
//! (`memo.rs`): `LISTEN larder_reads` on a session of its own, each
//! notification handed to `Memo::forget` in commit order, and the
//! questions that let a remembered miss be answered asked on the same
//! session (`catch_up.rs`). The memo is
//! trusted only while this runs: it starts hearing once `LISTEN` is in
//! place and goes deaf the moment the connection fails or stops answering,
//! since notifications sent meanwhile are lost.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, FuturesOrdered};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

use super::memo::{Change, Memo};
use super::{pg, ClusterError};

pub const CHANNEL: &str = "larder_reads";

/// How often the session is asked a question, so that a connection that
/// died without a word (a partition) is noticed within about
/// `PROBE_EVERY + PROBE_TIMEOUT`, not at TCP's pace.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Catch-up questions sent before the first of them is answered: a miss
/// that arrives while one is in flight gets its own at once instead of
/// waiting for that answer and then a whole round trip more.
const IN_FLIGHT: usize = 2;

/// Hears changes into `memo` until the connection fails (an error, for
/// the workers' board) or `stopped` is set.
pub async fn listen(
    settings: &pg::Settings,
    memo: &Memo,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let failed = |e: tokio_postgres::Error| ClusterError::from(e).to_string();
    let (client, mut connection) = settings
        .pg
        .connect(settings.tls.clone())
        .await
        .map_err(failed)?;
    // The connection's messages are read by a task of their own, since
    // queries on `client` need it driven too.
    let (tx, mut notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the listening connection failed");
                    return;
                }
            }
        }
    });
    let _deaf_on_exit = Deafen(memo, driver);
    (client.batch_execute(&format!("LISTEN {CHANNEL}")).await).map_err(failed)?;
    memo.hearing();
    memo.catch_up.open();
    tracing::debug!("hearing the database's changes");
    let mut probe = tokio::time::interval(PROBE_EVERY);
    // The catch-up questions in flight (`catch_up.rs`), with their numbers,
    // answered in the order they were sent.
    let mut questions: FuturesOrdered<BoxFuture<'_, (u64, Answer)>> = FuturesOrdered::new();
    loop {
        tokio::select! {
            // Notifications first: each read before an answer is heard
            // before that answer counts.
            biased;
            note = notes.recv() => match note {
                Some(n) => memo.forget(Change::parse(n.payload()).as_ref()),
                None => return Err("the listening connection closed".into()),
            },
            Some((n, answer)) = questions.next(), if !questions.is_empty() => {
                answer.map_err(failed)?;
                // The reader forwarded every notification that came before
                // the answer before it handed the answer on.
                while let Ok(n) = notes.try_recv() {
                    memo.forget(Change::parse(n.payload()).as_ref());
                }
                memo.catch_up.answered(n);
            }
            n = memo.catch_up.next_question(), if questions.len() < IN_FLIGHT => {
                let asked = client.simple_query("");
                questions.push_back(Box::pin(async move { (n, asked.await) }));
            }
            _ = probe.tick() => {
                match tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("")).await {
                    Ok(answered) => drop(answered.map_err(failed)?),
                    Err(_) => return Err(format!(
                        "the listening connection did not answer within {} s",
                        PROBE_TIMEOUT.as_secs()
                    )),
                }
            }
            _ = stopped.changed() => return Ok(()),
        }
    }
}

type Answer = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>;

/// Whatever ends `listen`, the memo stops being trusted and the
/// connection's reader stops.
struct Deafen<'a>(&'a Memo, tokio::task::JoinHandle<()>);

impl Drop for Deafen<'_> {
    fn drop(&mut self) {
        self.0.deaf();
        self.0.catch_up.close();
        self.1.abort();
    }
}
