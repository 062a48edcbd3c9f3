//! Bringing an experiment into the store: create it, resume it after a crash or a stop, or refuse a
//! changed spec under the same name.

use std::path::PathBuf;

use jiff::Timestamp;
use tracing::info;

use super::{Controller, Error, Result};
use crate::executor::Executor;
use crate::experiment;
use crate::spec::{Experiment, ExperimentSpec, ExperimentStatus};
use crate::store::{Durability, ExperimentRecord};
use crate::trial::TrialPhase;

/// What `admit` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Created,
    /// An unfinished experiment; `requeued` trials had been running or were stopped.
    Resumed {
        requeued: u32,
    },
    /// The experiment finished earlier; nothing to run.
    AlreadyFinished,
    /// Only budget fields changed, none of them shrank: the stored experiment takes the new budget
    /// and runs on (as `tuna resume --max-trials` does).
    Extended {
        max_trials: u32,
        requeued: u32,
    },
}

impl<E: Executor> Controller<E> {
    /// Stores `experiment` (from a file in `spec_dir`), or prepares the stored one to resume.
    /// `fresh` discards a stored experiment of the same name first.
    pub fn admit(&self, experiment: Experiment, spec_dir: Option<PathBuf>, fresh: bool) -> Result<Admission> {
        let name = experiment.metadata.name.clone().unwrap_or_default();
        let load = |source| Error::LoadExperiment { name: name.clone(), source };
        match self.store.experiment(&name).map_err(load)? {
            Some(_) if fresh => {
                self.discard(&name)?;
                self.create(experiment, spec_dir)
            }
            None => self.create(experiment, spec_dir),
            Some(existing) if budget_grew(&existing.experiment.spec, &experiment.spec) => {
                self.extend(&name, &experiment.spec)
            }
            Some(existing) if existing.experiment.spec != experiment.spec => {
                Err(Error::SpecChanged { name, fields: changed_fields(&existing.experiment, &experiment) })
            }
            Some(existing) if existing.experiment.status.as_ref().is_some_and(|s| s.phase.is_finished()) => {
                Ok(Admission::AlreadyFinished)
            }
            Some(_) => self.requeue(&name).map(|requeued| Admission::Resumed { requeued }),
        }
    }

    /// Gives a stored experiment the new budget, reopens it when it had finished, and re-queues
    /// what was running.
    fn extend(&self, name: &str, spec: &ExperimentSpec) -> Result<Admission> {
        let save = |source| Error::SaveExperiment { name: name.into(), source };
        self.store
            .update_experiment(name, Durability::Flushed, |r| {
                r.experiment.spec = spec.clone();
                experiment::reopen(r.experiment.status.get_or_insert_with(Default::default));
                r.exhausted = false;
            })
            .map_err(save)?;
        info!(experiment = name, max_trials = spec.max_trials, "budget raised by tuna run");
        let requeued = self.requeue(name)?;
        Ok(Admission::Extended { max_trials: spec.max_trials, requeued })
    }

    fn create(&self, mut experiment: Experiment, spec_dir: Option<PathBuf>) -> Result<Admission> {
        let seed = experiment.spec.algorithm.seed.unwrap_or_else(rand::random);
        experiment.status = Some(ExperimentStatus { seed, ..Default::default() });
        self.save(&ExperimentRecord::new(experiment, spec_dir))?;
        Ok(Admission::Created)
    }

    /// Removes an experiment's records and files.
    pub(super) fn discard(&self, name: &str) -> Result<()> {
        info!(experiment = name, "discarding the stored experiment (--fresh)");
        self.store.delete_experiment(name).map_err(|source| Error::SaveExperiment { name: name.into(), source })?;
        match std::fs::remove_dir_all(self.experiment_dir(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::RemoveFiles { name: name.into(), source: e })
            }
            _ => Ok(()),
        }
    }

    /// Puts every trial that was running (the controller died) or stopped back in the queue, after
    /// ending any process a dead controller left behind.
    pub fn requeue(&self, name: &str) -> Result<u32> {
        let trials = self.store.trials(name).map_err(|source| Error::LoadExperiment { name: name.into(), source })?;
        let mut requeued = 0;
        let now = Timestamp::now();
        for mut trial in trials {
            let before = trial.clone();
            if let Some(pid) = trial.pid.filter(|_| !matches!(trial.phase, TrialPhase::Succeeded | TrialPhase::Failed))
            {
                self.executor.reap(pid, trial.pid_stamp.as_deref());
            }
            requeued += u32::from(experiment::requeue(&mut trial, now));
            if trial != before {
                self.save_trial(&trial)?;
            }
        }
        Ok(requeued)
    }
}

/// Whether `new` differs from `old` only in the budget (`maxTrials`, `maxFailedTrials`,
/// `parallelTrials`), with neither trial count lowered.
fn budget_grew(old: &ExperimentSpec, new: &ExperimentSpec) -> bool {
    let mut same_budget = new.clone();
    (same_budget.max_trials, same_budget.max_failed_trials, same_budget.parallel_trials) =
        (old.max_trials, old.max_failed_trials, old.parallel_trials);
    old != new
        && same_budget == *old
        && new.max_trials >= old.max_trials
        && new.max_failed_trials >= old.max_failed_trials
}

/// The spec fields that differ, as paths (`spec.maxTrials, spec.parameters`).
fn changed_fields(old: &Experiment, new: &Experiment) -> String {
    let (old, new) =
        (serde_json::to_value(&old.spec).unwrap_or_default(), serde_json::to_value(&new.spec).unwrap_or_default());
    let empty = serde_json::Map::new();
    let (old, new) = (old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| old.get(*k) != new.get(*k)).map(|k| format!("spec.{k}")).collect::<Vec<_>>().join(", ")
}
