//! The group committer: one task per broker that writes queued shares and pool answers in batches,
//! one transaction each, and acknowledges every share of a batch only after it committed.

use tokio::sync::{mpsc, oneshot};

use anyhow::Result;

use super::{Credit, Ledger, PoolAnswer, ShareRecord};

/// One write waiting for its batch: a share (acknowledged after commit) or a pool's answer.
// Shares are the hot path and answers the rare case: boxing the share would cost an allocation per
// share to save queue memory only on answers.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Share {
        share: ShareRecord,
        ack: oneshot::Sender<Result<Credit, String>>,
    },
    Answer(PoolAnswer),
    /// Answered once everything queued before it has been committed (shutdown's drain).
    Flush(oneshot::Sender<()>),
}

/// Sends shares to the committer task and waits for their durable credit.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Pending>,
}

/// Most pool answers kept for a retry while commits fail.
const MAX_UNWRITTEN_ANSWERS: usize = 100_000;
/// Largest batch one transaction commits.
const MAX_BATCH: usize = 512;
/// Commits slower than this are logged.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

impl Committer {
    /// Starts the committer task. It ends when every `Committer` clone has been dropped.
    pub fn spawn(ledger: Ledger) -> Committer {
        let (queue, mut incoming) = mpsc::channel::<Pending>(8192);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            // Pool answers of a batch that failed to commit: written with the next one (their
            // inserts are idempotent), so a database blip does not lose what the pool accepted.
            let mut unwritten: Vec<PoolAnswer> = Vec::new();
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let mut shares = Vec::new();
                let mut acks = Vec::new();
                let mut answers = std::mem::take(&mut unwritten);
                let mut flushed = Vec::new();
                for pending in batch.drain(..) {
                    match pending {
                        Pending::Share { share, ack } => {
                            shares.push(share);
                            acks.push(ack);
                        }
                        Pending::Answer(answer) => answers.push(answer),
                        Pending::Flush(done) => flushed.push(done),
                    }
                }
                let started = std::time::Instant::now();
                let outcome = ledger.commit_shares(&shares, &answers).await;
                let elapsed = started.elapsed();
                crate::metrics::commit_latency(elapsed, shares.len());
                // A durable ack waits for its commit: slow storage shows up here first.
                if elapsed > SLOW_COMMIT {
                    tracing::warn!("slow commit: {} shares took {elapsed:?}", shares.len());
                }
                match outcome {
                    Ok(credits) => {
                        for (ack, credit) in acks.into_iter().zip(credits) {
                            let _ = ack.send(Ok(credit));
                        }
                    }
                    Err(error) => {
                        tracing::error!(
                            "batch of {} shares and {} pool answers failed to commit: {error:#}",
                            shares.len(),
                            answers.len()
                        );
                        for ack in acks {
                            let _ = ack.send(Err(error.to_string()));
                        }
                        // Bounded: a database down for long loses the oldest, with a log line.
                        if answers.len() > MAX_UNWRITTEN_ANSWERS {
                            tracing::error!("{} pool answers dropped", answers.len() - MAX_UNWRITTEN_ANSWERS);
                            answers.drain(..answers.len() - MAX_UNWRITTEN_ANSWERS);
                        }
                        unwritten = answers;
                    }
                }
                // Everything before the flush marker was in this batch (the queue is in order).
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        Committer { queue }
    }

    /// Returns once every share and answer queued before this call has been committed (or failed).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Pending::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Queues a share and returns once its batch has committed (or failed: then nothing was credited).
    pub async fn credit(&self, share: ShareRecord) -> Result<Credit> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send(Pending::Share { share, ack })
            .await
            .map_err(|_| anyhow::anyhow!("committer stopped"))?;
        done.await.map_err(|_| anyhow::anyhow!("committer stopped"))?.map_err(anyhow::Error::msg)
    }

    /// Queues a pool's answer; it is written with the next batch.
    pub async fn record_answer(&self, answer: PoolAnswer) {
        if self.queue.send(Pending::Answer(answer)).await.is_err() {
            tracing::error!("committer stopped: a pool answer was not recorded");
        }
    }
}
