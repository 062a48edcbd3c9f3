//! The experiment loop: one decision at a time (`plan::next_step`), acted on and persisted before
//! the next.
//!
//! ```text
//!        ┌──────────── next_step(counts) ◀────────────────┐
//!        ▼                                               │
//! Launch(n): queued trials, then Search::suggest ──▶ store ──▶ spawn run_trial ──▶ trial ends ─┤
//! Wait: the next trial to end (or Ctrl-C: stop all)                                           │
//! Finish: stop what runs if the result is already known, write the final status ◀─────────────┘
//! ```

mod admit;
mod plan;
mod status;
mod trial_run;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, instrument};

pub use admit::Admission;
pub use plan::{Counts, Limits, Step, next_step};
pub use trial_run::{Verdict, judge};

use crate::executor::Executor;
use crate::metrics::MetricParser;
use crate::search::{self, Outcome, Past, Search};
use crate::spec::{ExperimentPhase, Goal};
use crate::store::{ExperimentRecord, Store};
use crate::trial::{Trial, TrialPhase, reason};
use trial_run::{TrialContext, run_trial};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("experiment {name} was not found in the store")]
    NotFound { name: String },
    #[error(
        "experiment {name} already exists with a different spec (changed: {fields}); run with --fresh \
         to discard its trials and start over, or give the experiment a new metadata.name"
    )]
    SpecChanged { name: String, fields: String },
    #[error("failed to load experiment {name}")]
    LoadExperiment {
        name: String,
        #[source]
        source: crate::store::Error,
    },
    #[error("failed to save experiment {name}")]
    SaveExperiment {
        name: String,
        #[source]
        source: crate::store::Error,
    },
    #[error("failed to save trial {trial}")]
    SaveTrial {
        trial: String,
        #[source]
        source: crate::store::Error,
    },
    #[error("failed to remove the old files of experiment {name}")]
    RemoveFiles {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to set up the search for experiment {name}")]
    BuildSearch {
        name: String,
        #[source]
        source: search::Error,
    },
    #[error("failed to get suggestions for experiment {name}")]
    Suggest {
        name: String,
        #[source]
        source: search::Error,
    },
    #[error("failed to read the metrics format of experiment {name}")]
    MetricsFormat {
        name: String,
        #[source]
        source: crate::metrics::Error,
    },
    #[error("a trial task of experiment {name} crashed")]
    TrialTask {
        name: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the loop tells its caller as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    Launched { trial: &'a Trial, snapshot: Snapshot },
    Ended { trial: &'a Trial, snapshot: Snapshot },
}

/// The experiment at a glance.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub ended: u32,
    pub max_trials: u32,
    pub running: u32,
    pub best: Option<(String, f64)>,
    pub elapsed: std::time::Duration,
}

/// Runs experiments stored in `store` with `executor`; trial files go under `data_dir`.
pub struct Controller<E> {
    store: Store,
    executor: Arc<E>,
    data_dir: PathBuf,
}

impl<E: Executor> Controller<E> {
    pub fn new(store: Store, executor: Arc<E>, data_dir: PathBuf) -> Self {
        Self { store, executor, data_dir }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn experiment_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("experiments").join(name)
    }

    /// Runs a stored experiment until it finishes or `shutdown` turns true (its running trials are
    /// then stopped and re-queued on the next run). Returns the final record.
    #[instrument(skip_all, fields(experiment = %name))]
    pub async fn run(
        &self,
        name: &str,
        mut shutdown: watch::Receiver<bool>,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<ExperimentRecord> {
        let mut record = self.load(name)?;
        let mut run = self.start(&mut record)?;
        let mut tasks: JoinSet<Result<Trial>> = JoinSet::new();
        let (stop_tx, stop_rx) = watch::channel(None::<String>);
        let started = Instant::now();
        loop {
            let step = if *shutdown.borrow() {
                Step::Finish { phase: ExperimentPhase::Stopped, reason: reason::USER_STOPPED, stop_running: true }
            } else {
                next_step(run.counts(), run.limits(), run.search.exhausted_reason())
            };
            match step {
                Step::Launch(n) => {
                    for trial in self.launch(&mut run, n)? {
                        tasks.spawn(run_trial(Arc::clone(&run.ctx), trial.clone(), stop_rx.clone()));
                        progress(Progress::Launched { trial: &trial, snapshot: run.snapshot(started) });
                    }
                }
                Step::Wait => tokio::select! {
                    Some(joined) = tasks.join_next() => {
                        let trial = self.settle(&mut run, &mut record, joined)?;
                        progress(Progress::Ended { trial: &trial, snapshot: run.snapshot(started) });
                    }
                    _ = shutdown.wait_for(|stop| *stop) => {}
                },
                Step::Finish { phase, reason, stop_running } => {
                    if stop_running {
                        let _ = stop_tx.send(Some(stop_reason(phase, reason).to_string()));
                    }
                    while let Some(joined) = tasks.join_next().await {
                        let trial = self.settle(&mut run, &mut record, joined)?;
                        progress(Progress::Ended { trial: &trial, snapshot: run.snapshot(started) });
                    }
                    info!(?phase, reason, "experiment ended");
                    status::finish(&mut record, &run, phase, reason);
                    self.save(&record)?;
                    return Ok(record);
                }
            }
        }
    }

    fn load(&self, name: &str) -> Result<ExperimentRecord> {
        self.store
            .experiment(name)
            .map_err(|source| Error::LoadExperiment { name: name.into(), source })?
            .ok_or_else(|| Error::NotFound { name: name.into() })
    }

    fn save(&self, record: &ExperimentRecord) -> Result<()> {
        self.store.put_experiment(record).map_err(|source| Error::SaveExperiment { name: record.name().into(), source })
    }

    fn start(&self, record: &mut ExperimentRecord) -> Result<Run<E>> {
        let name = record.name().to_string();
        let spec = record.experiment.spec.clone();
        let status = record.experiment.status.get_or_insert_with(Default::default);
        let search =
            search::build(&spec, status.seed).map_err(|source| Error::BuildSearch { name: name.clone(), source })?;
        let parser = MetricParser::new(spec.metrics.format.as_deref())
            .map_err(|source| Error::MetricsFormat { name: name.clone(), source })?;
        let spec_dir = record.spec_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let working_dir = spec_dir.join(spec.trial.working_dir.as_deref().unwrap_or("."));
        let trials = self.store.trials(&name).map_err(|source| Error::LoadExperiment { name: name.clone(), source })?;
        status.phase = ExperimentPhase::Running;
        status.reason = None;
        status.message = None;
        status.completion_time = None;
        status.start_time.get_or_insert_with(|| Timestamp::now().to_string());
        let ctx = TrialContext {
            store: self.store.clone(),
            executor: Arc::clone(&self.executor),
            spec,
            parser,
            working_dir,
            experiment_dir: self.experiment_dir(&name),
        };
        let run = Run { ctx: Arc::new(ctx), search, trials, active: HashSet::new(), exhausted: false };
        status::refresh(record, &run);
        self.save(record)?;
        Ok(run)
    }

    /// Picks `n` trials to start: queued ones first, then new suggestions (stored before they run).
    fn launch(&self, run: &mut Run<E>, n: u32) -> Result<Vec<Trial>> {
        let mut picked: Vec<Trial> = run
            .trials
            .iter()
            .filter(|t| t.phase == TrialPhase::Pending && !run.active.contains(&t.index))
            .take(n as usize)
            .cloned()
            .collect();
        let wanted = n as usize - picked.len();
        if wanted > 0 {
            let history = run.history();
            let fresh = run
                .search
                .suggest(&history, wanted)
                .map_err(|source| Error::Suggest { name: run.experiment(), source })?;
            run.exhausted |= fresh.len() < wanted;
            for parameters in fresh {
                let trial = Trial::new(&run.experiment(), run.trials.len() as u32, parameters, Timestamp::now());
                self.store
                    .put_trial(&trial)
                    .map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })?;
                run.trials.push(trial.clone());
                picked.push(trial);
            }
        }
        run.active.extend(picked.iter().map(|t| t.index));
        Ok(picked)
    }

    /// Takes in a trial that ended and updates the experiment's status.
    fn settle(
        &self,
        run: &mut Run<E>,
        record: &mut ExperimentRecord,
        joined: std::result::Result<Result<Trial>, tokio::task::JoinError>,
    ) -> Result<Trial> {
        let name = record.name().to_string();
        let trial = joined.map_err(|source| Error::TrialTask { name, source })??;
        run.active.remove(&trial.index);
        if let Some(slot) = run.trials.get_mut(trial.index as usize) {
            *slot = trial.clone();
        }
        status::refresh(record, run);
        self.store
            .put_experiment_status(record)
            .map_err(|source| Error::SaveExperiment { name: record.name().into(), source })?;
        Ok(trial)
    }
}

fn stop_reason(phase: ExperimentPhase, reason: &'static str) -> &'static str {
    match phase {
        ExperimentPhase::Stopped => reason::USER_STOPPED,
        _ if reason == "GoalReached" => reason::GOAL_REACHED,
        _ => reason,
    }
}

/// One experiment being run.
struct Run<E> {
    ctx: Arc<TrialContext<E>>,
    search: Box<dyn Search>,
    /// Every trial, by index.
    trials: Vec<Trial>,
    /// Trials handed to a task and not back yet.
    active: HashSet<u32>,
    exhausted: bool,
}

impl<E> Run<E> {
    fn experiment(&self) -> String {
        self.trials.first().map(|t| t.experiment.clone()).unwrap_or_else(|| {
            self.ctx.experiment_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        })
    }

    fn limits(&self) -> Limits {
        let spec = &self.ctx.spec;
        Limits {
            max_trials: spec.max_trials,
            parallel_trials: spec.parallel_trials,
            max_failed_trials: spec.max_failed_trials,
        }
    }

    fn counts(&self) -> Counts {
        let objective = &self.ctx.spec.objective;
        let mut c = Counts { created: self.trials.len() as u32, exhausted: self.exhausted, ..Default::default() };
        c.running = self.active.len() as u32;
        for t in &self.trials {
            match t.phase {
                TrialPhase::Pending if !self.active.contains(&t.index) => c.queued += 1,
                TrialPhase::Succeeded => c.succeeded += 1,
                TrialPhase::Failed => c.failed += 1,
                _ => {}
            }
            c.goal_reached |=
                t.phase == TrialPhase::Succeeded && t.objective.is_some_and(|v| objective.reaches_target(v));
        }
        c
    }

    /// What the search sees: values oriented so that lower is better.
    fn history(&self) -> Vec<Past> {
        let sign = if self.ctx.spec.objective.goal == Goal::Maximize { -1.0 } else { 1.0 };
        self.trials
            .iter()
            .map(|t| Past {
                parameters: t.parameters.clone(),
                outcome: match (t.phase, t.objective) {
                    (TrialPhase::Succeeded, Some(v)) => Outcome::Loss(sign * v),
                    (TrialPhase::Failed, _) => Outcome::Failed,
                    _ => Outcome::Pending,
                },
            })
            .collect()
    }

    fn best(&self) -> Option<&Trial> {
        let objective = &self.ctx.spec.objective;
        self.trials.iter().filter(|t| t.phase == TrialPhase::Succeeded && t.objective.is_some()).fold(
            None,
            |best: Option<&Trial>, t| match best {
                Some(b) if !objective.better(t.objective.unwrap_or_default(), b.objective.unwrap_or_default()) => {
                    Some(b)
                }
                _ => Some(t),
            },
        )
    }

    fn snapshot(&self, started: Instant) -> Snapshot {
        let c = self.counts();
        Snapshot {
            ended: c.succeeded + c.failed,
            max_trials: self.ctx.spec.max_trials,
            running: c.running,
            best: self.best().map(|t| (t.name.clone(), t.objective.unwrap_or_default())),
            elapsed: started.elapsed(),
        }
    }
}
