//! Experiments whose trials a client runs (`executor: external`): the API creates trials on ask and
//! records results on tell; this loop only asks the core to review them (trials left open past
//! `spec.trial.timeout` fail; the experiment ends by the same rules as `run`) and keeps the status
//! current.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tracing::instrument;

use super::{Controller, Error, Halt, Result};
use crate::executor::Executor;
use crate::experiment;
use crate::store::{Durability, ExperimentRecord};

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
            let now = Timestamp::now();
            let halted = *halt.borrow_and_update();
            if halted == Halt::Interrupt {
                return Ok(record);
            }
            let spec = record.experiment.spec.clone();
            let mut trials =
                self.store.trials(name).map_err(|source| Error::LoadExperiment { name: name.into(), source })?;
            let review = experiment::review(&spec, &mut trials, record.exhausted, halted, now);
            for trial in trials.iter().filter(|t| review.expired.contains(&t.index)) {
                self.save_trial(trial)?;
            }
            let status = record.experiment.status.get_or_insert_with(Default::default);
            if let Some(reason) = review.end {
                experiment::finish(status, &spec, &trials, reason, now);
                self.save_status(&record, Durability::Flushed)?;
                return Ok(record);
            }
            experiment::begin(status, now);
            experiment::refresh(status, &spec, &trials, &review.open);
            self.save_status(&record, Durability::Lazy)?;
            tokio::select! {
                _ = &mut changes => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.next_timeout(Duration::ZERO).is_ok() {}
                }
                _ = tokio::time::sleep(TIMEOUT_CHECK) => {}
                _ = super::next_halt(&mut halt) => {}
            }
        }
    }
}
