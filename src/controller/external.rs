//! Experiments whose trials a client runs (`executor: external`): the API creates trials on ask and
//! records results on tell; this loop only asks the core to review them (trials left open past
//! `spec.trial.timeout` fail; the experiment ends by the same rules as `run`) and keeps the status
//! current. It costs nothing while nothing happens: it wakes for trial writes, the next deadline,
//! or a halt; it keeps a ledger of the trials in memory (the open ones whole, of the others only
//! their phase and the best) and re-reads only those written since; it writes the status only when
//! it changed.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tracing::instrument;

use super::{Controller, Error, Halt, Result};
use crate::executor::Executor;
use crate::experiment;
use crate::spec::{ExperimentSpec, parse_duration};
use crate::store::{Durability, ExperimentRecord};
use crate::trial::Trial;

/// After a trial write, how long to let more arrive before one pass over them all: an ask/tell
/// client writes twice per trial, often hundreds of times a second, and the status needs no more.
const SETTLE: Duration = Duration::from_millis(50);

impl<E: Executor> Controller<E> {
    /// Watches an external experiment until it ends or `halt` says otherwise.
    #[instrument(skip_all, fields(experiment = %name))]
    pub async fn watch_external(&self, name: &str, mut halt: watch::Receiver<Halt>) -> Result<ExperimentRecord> {
        let changes = self.store.watch_trials(name);
        let read = |source| Error::LoadExperiment { name: name.into(), source };
        let every_trial = || self.store.trials(name).map_err(read);
        // Each trial read into the ledger as it is decoded: no list of them all is held.
        let ledger_of = |spec: &ExperimentSpec| -> Result<experiment::Ledger> {
            let mut ledger = experiment::Ledger::default();
            self.store.for_each_trial(name, |t| ledger.put(spec, t)).map_err(read)?;
            Ok(ledger)
        };
        let first = self.load(name)?;
        let mut ledger = ledger_of(&first.experiment.spec)?;
        let mut loaded = Some(first);
        let mut written = std::collections::BTreeSet::new();
        loop {
            let mut record = match loaded.take() {
                Some(record) => record, // the first pass uses the record the ledger was made for
                None => self.load(name)?,
            };
            let now = Timestamp::now();
            let halted = *halt.borrow_and_update();
            if halted == Halt::Interrupt {
                return Ok(record);
            }
            let spec = record.experiment.spec.clone();
            written.extend(changes.take());
            for index in std::mem::take(&mut written) {
                if let Some(trial) = self.store.trial(name, index).map_err(read)? {
                    ledger.put(&spec, trial);
                }
            }
            if ledger.stale() {
                ledger = ledger_of(&spec)?;
            }
            let review = experiment::review(&spec, &mut ledger, record.exhausted, halted, now);
            if !self.save_expired(name, &spec, review.expired, &mut ledger, now)? {
                continue; // a result came in first: review again with it
            }
            let status = record.experiment.status.get_or_insert_with(Default::default);
            if let Some(reason) = review.end {
                // The end message quotes the last failures: every trial is read once, at the end.
                experiment::finish(status, &spec, &every_trial()?, reason, now);
                self.save_status(&record, Durability::Flushed)?;
                return Ok(record);
            }
            let before = status.clone();
            experiment::begin(status, now);
            ledger.refresh(status);
            if *status != before {
                self.save_status(&record, Durability::Lazy)?;
            }
            let deadline = next_deadline(&spec, ledger.open(), now);
            tokio::select! {
                indexes = changes.next() => {
                    written.extend(indexes);
                    tokio::time::sleep(SETTLE).await;
                }
                _ = sleep_for(deadline) => {}
                _ = super::next_halt(&mut halt) => {}
            }
        }
    }

    /// Writes the deadline's verdict on each expired trial, each only if it is still open (a tell
    /// may win the race); returns whether all were written (else the ledger holds the winners').
    fn save_expired(
        &self,
        name: &str,
        spec: &ExperimentSpec,
        expired: Vec<Trial>,
        ledger: &mut experiment::Ledger,
        now: Timestamp,
    ) -> Result<bool> {
        let mut all = true;
        for concluded in expired {
            let index = concluded.index;
            let changed = self.store.change_trial(name, index, |t| match experiment::expired(spec, t, now) {
                Some(verdict) => {
                    verdict.conclude(t, now);
                    Ok(())
                }
                None => Err(()),
            });
            let trial = concluded.name;
            match changed.map_err(|source| Error::SaveTrial { trial: trial.clone(), source })? {
                Some(Ok(written)) => ledger.put(spec, written),
                Some(Err(())) | None => {
                    all = false;
                    let read = self.store.trial(name, index).map_err(|source| Error::SaveTrial { trial, source })?;
                    if let Some(current) = read {
                        ledger.put(spec, current);
                    }
                }
            }
        }
        Ok(all)
    }
}

/// How long until the first open trial's result is overdue; `None` without a timeout or open trial.
fn next_deadline<'a>(spec: &ExperimentSpec, open: impl Iterator<Item = &'a Trial>, now: Timestamp) -> Option<Duration> {
    let timeout = parse_duration(spec.trial.timeout.as_deref()?)?;
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let first = open.map(|t| t.started_at.unwrap_or(t.created_at).as_millisecond().saturating_add(timeout_ms)).min()?;
    // A millisecond past it, so the review finds it overdue.
    Some(Duration::from_millis(u64::try_from(first - now.as_millisecond() + 1).unwrap_or(0)))
}

async fn sleep_for(deadline: Option<Duration>) {
    match deadline {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
