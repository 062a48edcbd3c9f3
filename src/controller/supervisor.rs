//! `tuna serve`'s controller: every experiment in the store runs concurrently, each in its own
//! task, and follows what users asked for through the API (run, stop, delete).
//!
//! ```text
//! store change / tick ──▶ reconcile each record ──▶ spawn | halt | delete
//!                         (desired × phase × task)
//! ```
//! After a restart (also after `kill -9`) every unfinished experiment is picked up where it
//! stopped: trials that were running are re-queued first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::{Controller, Error, Halt, Result};
use crate::executor::Executor;
use crate::experiment;
use crate::spec::{EndReason, ExecutorKind, ExperimentPhase};
use crate::store::{Desired, Durability, ExperimentRecord};

/// How often every experiment is looked at although no change woke the supervisor: a safety net
/// only (each write names the experiment it changed), so rare enough to cost nothing when idle.
const RECONCILE_ALL_EVERY: Duration = Duration::from_secs(60);

type Outcome = (String, Result<ExperimentRecord>);

/// Runs until `shutdown` turns true, then interrupts every experiment (re-queued on the next start).
pub async fn supervise<E: Executor>(controller: Arc<Controller<E>>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let changes = controller.store.watch_experiments();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut halts: HashMap<String, watch::Sender<Halt>> = HashMap::new();
    let mut every = tokio::time::interval(RECONCILE_ALL_EVERY);
    loop {
        tokio::select! {
            names = changes.next() => {
                for name in names {
                    if let Some(record) = load(&controller, &name)? {
                        reconcile(&controller, &record, &mut halts, &mut tasks);
                    }
                }
            }
            _ = every.tick() => {
                changes.take();
                let all = controller.store.experiments().map_err(|source| Error::LoadExperiment { name: "*".into(), source })?;
                for record in all {
                    reconcile(&controller, &record, &mut halts, &mut tasks);
                }
            }
            Some(joined) = tasks.join_next() => {
                if let Some(name) = ended(&controller, &mut halts, joined)
                    && let Some(record) = load(&controller, &name)?
                {
                    reconcile(&controller, &record, &mut halts, &mut tasks);
                }
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    info!(experiments = halts.len(), "interrupting running experiments for shutdown");
    for halt in halts.values() {
        let _ = halt.send(Halt::Interrupt);
    }
    while let Some(joined) = tasks.join_next().await {
        ended(&controller, &mut halts, joined);
    }
    Ok(())
}

fn reconcile<E: Executor>(
    controller: &Arc<Controller<E>>,
    record: &ExperimentRecord,
    halts: &mut HashMap<String, watch::Sender<Halt>>,
    tasks: &mut JoinSet<Outcome>,
) {
    let name = record.name().to_string();
    let phase = record.experiment.status.as_ref().map(|s| s.phase).unwrap_or_default();
    match (record.desired, halts.get(&name)) {
        (Desired::Stop | Desired::Delete, Some(halt)) => {
            halt.send_if_modified(|h| std::mem::replace(h, Halt::Stop) != Halt::Stop);
        }
        (Desired::Stop | Desired::Delete, None) => {
            if let Err(e) = controller.settle_idle(record) {
                error!(experiment = %name, error = %e, "failed to carry out a stop or delete");
            }
        }
        (Desired::Run, None) if matches!(phase, ExperimentPhase::Pending | ExperimentPhase::Running) => {
            let (tx, rx) = watch::channel(Halt::Run);
            halts.insert(name.clone(), tx);
            let controller = Arc::clone(controller);
            let external = record.experiment.spec.executor == ExecutorKind::External;
            tasks.spawn(async move {
                let result = if external {
                    controller.watch_external(&name, rx).await
                } else {
                    match controller.requeue(&name) {
                        Ok(_) => controller.run(&name, rx, &mut |_| {}).await,
                        Err(e) => Err(e),
                    }
                };
                (name, result)
            });
        }
        _ => {}
    }
}

impl<E: Executor> Controller<E> {
    /// Carries out a stop or delete that users asked for (`desired`) on an experiment that no
    /// task runs here: a delete removes it with its files; a stop ends a pending or running one
    /// (interrupted: none of its trials runs) as stopped by the user. `tuna serve` does this for
    /// an idle experiment, and `tuna stop`/`tuna delete` for a data dir no process holds.
    pub fn settle_idle(&self, record: &ExperimentRecord) -> Result<()> {
        let name = record.name();
        let phase = record.experiment.status.as_ref().map(|s| s.phase).unwrap_or_default();
        match record.desired {
            Desired::Delete => self.discard(name),
            Desired::Stop if matches!(phase, ExperimentPhase::Pending | ExperimentPhase::Running) => {
                self.store
                    .update_experiment(name, Durability::Flushed, |r| {
                        let status = r.experiment.status.get_or_insert_with(Default::default);
                        let message = "stopped while no trial ran; resume it to go on".to_string();
                        experiment::end_with(status, EndReason::StoppedByUser, message, Timestamp::now());
                    })
                    .map_err(|source| Error::SaveExperiment { name: name.into(), source })?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn load<E: Executor>(controller: &Controller<E>, name: &str) -> Result<Option<ExperimentRecord>> {
    controller.store.experiment(name).map_err(|source| Error::LoadExperiment { name: name.into(), source })
}

/// A task ended: forget it; an experiment whose loop failed is marked failed with the cause.
/// Returns the experiment's name, to be reconciled again (a stop or delete may wait on it).
fn ended<E: Executor>(
    controller: &Controller<E>,
    halts: &mut HashMap<String, watch::Sender<Halt>>,
    joined: std::result::Result<Outcome, tokio::task::JoinError>,
) -> Option<String> {
    let (name, result) = match joined {
        Ok(outcome) => outcome,
        Err(e) => {
            // A panicked task has lost its name; the next full look restarts whatever is unfinished.
            error!(error = %e, "an experiment task panicked");
            halts.retain(|_, h| !h.is_closed());
            return None;
        }
    };
    halts.remove(&name);
    if let Err(e) = result {
        let message = error_chain(&e);
        warn!(experiment = %name, error = %message, "experiment loop failed");
        let _ = controller.store.update_experiment(&name, Durability::Flushed, |r| {
            let status = r.experiment.status.get_or_insert_with(Default::default);
            experiment::end_with(status, EndReason::ControllerError, message.clone(), Timestamp::now());
        });
    }
    Some(name)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
