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
pub mod crd;
mod external;
mod plan;
mod status;
mod supervisor;
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
pub use supervisor::supervise;
pub use trial_run::{Site, Verdict, judge, launch_for};

use crate::executor::Executor;
use crate::metrics::MetricParser;
use crate::search::{self, Outcome, Past, Search};
use crate::spec::{ExperimentPhase, ExperimentStatus, Goal};
use crate::store::{Durability, ExperimentRecord, Store};
use crate::token::TrialSecret;
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
    #[error(
        "experiment {name} uses executor external: its trials are run by a client through `tuna serve`'s ask/tell API, not by `tuna run`"
    )]
    ExternalExecutor { name: String },
    #[error("a trial task of experiment {name} crashed")]
    TrialTask {
        name: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a running experiment is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Halt {
    #[default]
    Run,
    /// Stop: running trials are stopped, the experiment is `Stopped` until resumed.
    Stop,
    /// The controller is going away: running trials are interrupted and re-queued on its return.
    Interrupt,
}

/// How local trials reach the API to push metrics.
#[derive(Clone, Debug)]
pub struct TrialApi {
    /// The server's base URL, given to trials as `TUNA_API`.
    pub base_url: String,
    pub secret: TrialSecret,
}

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
    api: Option<Arc<TrialApi>>,
}

impl<E: Executor> Controller<E> {
    pub fn new(store: Store, executor: Arc<E>, data_dir: PathBuf) -> Self {
        Self { store, executor, data_dir, api: None }
    }

    /// Gives local trials `TUNA_API` and their own `TUNA_TRIAL_TOKEN`.
    pub fn with_api(mut self, api: TrialApi) -> Self {
        self.api = Some(Arc::new(api));
        self
    }

    fn experiment_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("experiments").join(name)
    }

    /// Runs a stored experiment until it finishes or `halt` says otherwise. Returns the final record.
    #[instrument(skip_all, fields(experiment = %name))]
    pub async fn run(
        &self,
        name: &str,
        mut halt: watch::Receiver<Halt>,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<ExperimentRecord> {
        let mut record = self.load(name)?;
        if record.experiment.spec.executor == crate::spec::ExecutorKind::External {
            return Err(Error::ExternalExecutor { name: name.into() });
        }
        let mut run = self.start(&mut record)?;
        let mut tasks: JoinSet<Result<Trial>> = JoinSet::new();
        let (stop_tx, stop_rx) = watch::channel(None::<String>);
        let started = Instant::now();
        loop {
            let step = match *halt.borrow() {
                Halt::Run => next_step(run.counts(), run.limits(), run.search.exhausted_reason()),
                Halt::Stop => {
                    Step::Finish { phase: ExperimentPhase::Stopped, reason: reason::USER_STOPPED, stop_running: true }
                }
                Halt::Interrupt => Step::Finish {
                    phase: ExperimentPhase::Running,
                    reason: reason::CONTROLLER_SHUTDOWN,
                    stop_running: true,
                },
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
                    _ = halted(&mut halt) => {}
                },
                Step::Finish { phase, reason, stop_running } => {
                    if stop_running {
                        let _ = stop_tx.send(Some(stop_reason(phase, reason).to_string()));
                    }
                    while let Some(joined) = tasks.join_next().await {
                        let trial = self.settle(&mut run, &mut record, joined)?;
                        progress(Progress::Ended { trial: &trial, snapshot: run.snapshot(started) });
                    }
                    info!(?phase, reason, "experiment loop ended");
                    let status = record.experiment.status.get_or_insert_with(Default::default);
                    status::finish(status, &run.ctx.spec, &run.trials, phase, reason);
                    self.save_status(&record, Durability::Flushed)?;
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

    /// Writes only the status, leaving what users asked for (written by the API) as it is.
    fn save_status(&self, record: &ExperimentRecord, durability: Durability) -> Result<()> {
        let status: Option<ExperimentStatus> = record.experiment.status.clone();
        self.store
            .update_experiment(record.name(), durability, |r| r.experiment.status = status.clone())
            .map_err(|source| Error::SaveExperiment { name: record.name().into(), source })?;
        Ok(())
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
            api: self.api.clone(),
            origin: record.origin.clone(),
        };
        let run = Run { name, ctx: Arc::new(ctx), search, trials, active: HashSet::new(), exhausted: false };
        status::refresh(status, &run.ctx.spec, &run.trials, &run.active);
        self.save_status(record, Durability::Flushed)?;
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
                .map_err(|source| Error::Suggest { name: run.name.clone(), source })?;
            run.exhausted |= fresh.len() < wanted;
            for parameters in fresh {
                let trial = Trial::new(&run.name, run.trials.len() as u32, parameters, Timestamp::now());
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
        let trial = joined.map_err(|source| Error::TrialTask { name: run.name.clone(), source })??;
        run.active.remove(&trial.index);
        if let Some(slot) = run.trials.get_mut(trial.index as usize) {
            *slot = trial.clone();
        }
        let status = record.experiment.status.get_or_insert_with(Default::default);
        status::refresh(status, &run.ctx.spec, &run.trials, &run.active);
        // The trial itself was flushed; the status is rebuilt from the trials on every load.
        self.save_status(record, Durability::Lazy)?;
        Ok(trial)
    }
}

/// Waits until `halt` asks for something other than running (forever once its sender is gone).
async fn halted(halt: &mut watch::Receiver<Halt>) {
    if halt.wait_for(|h| *h != Halt::Run).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn stop_reason(phase: ExperimentPhase, reason: &'static str) -> &'static str {
    match phase {
        ExperimentPhase::Stopped => reason::USER_STOPPED,
        ExperimentPhase::Running => reason::CONTROLLER_SHUTDOWN,
        _ if reason == "GoalReached" => reason::GOAL_REACHED,
        _ => reason,
    }
}

/// One experiment being run.
struct Run<E> {
    name: String,
    ctx: Arc<TrialContext<E>>,
    search: Box<dyn Search>,
    /// Every trial, by index.
    trials: Vec<Trial>,
    /// Trials handed to a task and not back yet.
    active: HashSet<u32>,
    exhausted: bool,
}

impl<E> Run<E> {
    fn limits(&self) -> Limits {
        Limits::of(&self.ctx.spec)
    }

    fn counts(&self) -> Counts {
        status::counts(&self.ctx.spec, &self.trials, &self.active, self.exhausted)
    }

    fn history(&self) -> Vec<Past> {
        history(&self.ctx.spec, &self.trials)
    }

    fn snapshot(&self, started: Instant) -> Snapshot {
        let c = self.counts();
        Snapshot {
            ended: c.succeeded + c.failed,
            max_trials: self.ctx.spec.max_trials,
            running: c.running,
            best: status::best(&self.ctx.spec, &self.trials).map(|t| (t.name.clone(), t.objective.unwrap_or_default())),
            elapsed: started.elapsed(),
        }
    }
}

/// What the search sees: values oriented so that lower is better.
pub fn history(spec: &crate::spec::ExperimentSpec, trials: &[Trial]) -> Vec<Past> {
    let sign = if spec.objective.goal == Goal::Maximize { -1.0 } else { 1.0 };
    trials
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
