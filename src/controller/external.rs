//! Experiments whose trials a client runs (`executor: external`): the API creates trials on ask and
//! records results on tell; this loop only judges. It fails trials left open past
//! `spec.trial.timeout`, keeps the status current and ends the experiment by the same rules as
//! `run`.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tracing::instrument;

use super::{Controller, Error, Halt, Result, halted, next_step, status};
use crate::executor::Executor;
use crate::spec::{ExperimentPhase, parse_duration};
use crate::store::{Durability, ExperimentRecord};
use crate::trial::{Trial, TrialPhase, reason};

/// How often open trials are checked against their timeout when nothing else happens.
const TIMEOUT_CHECK: Duration = Duration::from_secs(1);
/// After a trial write, how long to let more arrive before one pass over them all: an ask/tell
/// client writes twice per trial, often hundreds of times a second, and the status needs no more.
const SETTLE: Duration = Duration::from_millis(50);

impl<E: Executor> Controller<E> {
    /// Watches an external experiment until it ends or `halt` says otherwise.
    #[instrument(skip_all, fields(experiment = %name))]
    pub async fn watch_external(&self, name: &str, mut halt: watch::Receiver<Halt>) -> Result<ExperimentRecord> {
        let mut changes = self.store.watch_trials(name);
        loop {
            let mut record = self.load(name)?;
            let spec = record.experiment.spec.clone();
            let mut trials =
                self.store.trials(name).map_err(|source| Error::LoadExperiment { name: name.into(), source })?;
            self.fail_expired(&spec, &mut trials)?;
            let open: HashSet<u32> = trials.iter().filter(|t| !t.phase.is_finished()).map(|t| t.index).collect();
            let counts = status::counts(&spec, &trials, &open, record.exhausted);
            let status = record.experiment.status.get_or_insert_with(Default::default);
            let ending = match *halt.borrow() {
                Halt::Run => match next_step(counts, super::Limits::of(&spec), exhausted_reason(&spec)) {
                    super::Step::Finish { phase, reason, .. } => Some((phase, reason)),
                    _ => None,
                },
                Halt::Stop => Some((ExperimentPhase::Stopped, reason::USER_STOPPED)),
                Halt::Interrupt => return Ok(record),
            };
            if let Some((phase, why)) = ending {
                status::finish(status, &spec, &trials, phase, why);
                self.save_status(&record, Durability::Flushed)?;
                return Ok(record);
            }
            if status.phase != ExperimentPhase::Running {
                status.phase = ExperimentPhase::Running;
                status.start_time.get_or_insert_with(|| Timestamp::now().to_string());
            }
            status::refresh(status, &spec, &trials, &open);
            self.save_status(&record, Durability::Lazy)?;
            tokio::select! {
                _ = &mut changes => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.next_timeout(Duration::ZERO).is_ok() {}
                }
                _ = tokio::time::sleep(TIMEOUT_CHECK) => {}
                _ = halted(&mut halt) => {}
            }
        }
    }

    /// Fails every open trial older than the spec's timeout.
    fn fail_expired(&self, spec: &crate::spec::ExperimentSpec, trials: &mut [Trial]) -> Result<()> {
        let Some(timeout) = spec.trial.timeout.as_deref().and_then(parse_duration) else { return Ok(()) };
        let now = Timestamp::now();
        for trial in trials.iter_mut().filter(|t| !t.phase.is_finished()) {
            let since = trial.started_at.unwrap_or(trial.created_at);
            if now.as_millisecond() - since.as_millisecond() > timeout.as_millis() as i64 {
                trial.move_to(TrialPhase::Failed);
                trial.reason = Some(reason::TIMED_OUT.into());
                trial.message = Some(format!(
                    "no result within spec.trial.timeout ({})",
                    spec.trial.timeout.as_deref().unwrap_or_default()
                ));
                trial.finished_at = Some(now);
                self.store.put_trial(trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })?;
            }
        }
        Ok(())
    }
}

fn exhausted_reason(spec: &crate::spec::ExperimentSpec) -> &'static str {
    if spec.algorithm.name == "grid" { "GridExhausted" } else { "SearchSpaceExhausted" }
}
