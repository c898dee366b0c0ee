//! The engine: diagnoses run as tokio tasks, as many at once as `--concurrency` allows and
//! at most `--per-server` on one server (address and port), so that a fleet of targets on
//! one server or pooler never approaches its max_connections. Targets are read as they are
//! needed and results are handed over as they complete: a waiting target holds only its
//! plan, and the reader stays a bounded distance ahead of the probes.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Semaphore};

use crate::app::{self, RunContext, RunOptions};
use crate::error::ToolError;
use crate::plan::Plan;
use crate::report::Report;
use crate::slots::Slots;

/// The default `--concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The default `--per-server`: a full diagnosis holds up to three connections, so eight
/// diagnoses stay under 25 of a default max_connections of 100.
pub const DEFAULT_PER_SERVER: usize = 8;
/// How many targets may wait, read and resolved, for a slot.
const WAITING: usize = 256;

/// How a fleet runs.
pub struct Settings {
    pub concurrency: usize,
    pub per_server: usize,
    /// The deadline of the whole run: targets still running are cut short, targets not
    /// started yet end at once with a timeout.
    pub run_ends: Option<Instant>,
    /// How many targets, when known before the run.
    pub targets: Option<usize>,
}

/// One target's result, with its place in the input.
pub enum Outcome {
    Report {
        index: usize,
        report: Box<Report>,
    },
    /// A targets-file line that names no target the doctor can probe.
    Unusable {
        index: usize,
        error: ToolError,
    },
}

/// Targets as they are read, each resolved to its plan.
pub type Targets = Box<dyn Iterator<Item = Result<Plan, ToolError>> + Send>;

/// Diagnoses every target; `on_outcome` sees each result as it completes and returns
/// false to stop the run (a closed pipe). Returns once all are done or it stopped.
pub fn run(
    targets: Targets,
    options: RunOptions,
    settings: Settings,
    mut on_outcome: impl FnMut(Outcome) -> bool,
) -> std::io::Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(settings.concurrency.max(1))
        .min(settings.targets.unwrap_or(usize::MAX));
    // One target: its two connections overlap on one thread; more threads would only cost
    // their start-up.
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        // One target needs no caps (and no name lookup to find its server's).
        let slots = match settings.targets {
            Some(1) => Slots::unlimited(),
            _ => Slots::new(settings.concurrency, settings.per_server),
        };
        let context = Arc::new(RunContext::prepare(options, slots, settings.run_ends).await);
        let (plan_tx, mut plan_rx) = mpsc::channel::<Result<Plan, ToolError>>(16);
        // The targets file is read on a thread of its own: a slow disk or a long file never
        // holds the engine's threads, and the channel keeps the reader a few lines ahead.
        tokio::task::spawn_blocking(move || {
            for target in targets {
                if plan_tx.blocking_send(target).is_err() {
                    break;
                }
            }
        });
        let (done_tx, mut done_rx) = mpsc::channel::<Outcome>(settings.concurrency.max(1));
        let waiting = Arc::new(Semaphore::new(settings.concurrency.max(1) + WAITING));
        let run_ends = settings.run_ends;
        tokio::spawn(async move {
            let mut index = 0;
            while let Some(target) = plan_rx.recv().await {
                let done = done_tx.clone();
                let plan = match target {
                    Ok(plan) => plan,
                    Err(error) => {
                        if done.send(Outcome::Unusable { index, error }).await.is_err() {
                            break;
                        }
                        index += 1;
                        continue;
                    }
                };
                let Ok(admitted) = waiting.clone().acquire_owned().await else {
                    break;
                };
                let context = context.clone();
                tokio::spawn(async move {
                    let report = app::run(&plan, &context, run_ends).await;
                    drop(admitted);
                    let _ = done
                        .send(Outcome::Report {
                            index,
                            report: Box::new(report),
                        })
                        .await;
                });
                index += 1;
            }
        });
        while let Some(outcome) = done_rx.recv().await {
            if !on_outcome(outcome) {
                break;
            }
        }
    });
    // Tasks still running after a stop, and a resolver stuck in getaddrinfo, must not hold
    // the process.
    runtime.shutdown_background();
    Ok(())
}
