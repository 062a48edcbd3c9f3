//! The shells around the experiment core: the loop that runs an experiment's trials through an
//! executor (this file), the supervisor that runs every stored experiment, the review of ask/tell
//! experiments, admission, and the custom-resource reconciler (`crd`). Every decision is the
//! core's (`crate::experiment`); these turn I/O into its events and carry out its commands.
//!
//! ```text
//!   ┌─▶ Core::step ──▶ Save ─▶ store      Launch/Retry ─▶ Attempts (executor tasks)   Stop ─▶ one trial
//!   │                  Ended ─▶ status, progress            │ TrialEvent, Finished
//!   │                  Finish ─▶ final status, return       ▼
//!   └──────────────── Core::handle ◀── events (started, lines → observations, attempt ended) ◀─┘
//! ```

mod admit;
pub mod crd;
mod external;
pub mod lease;
mod supervisor;
mod timed;
mod trial_run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::watch;
use tracing::{info, instrument};

pub use admit::Admission;
pub use supervisor::supervise;
pub use trial_run::{Site, launch_for};

use crate::executor::{Executor, TrialEvent};
pub use crate::experiment::Halt;
use crate::experiment::{self, Command, Core, Event};
use crate::metrics::MetricParser;
use crate::search::{self, Search};
use crate::spec::{Collector, EndReason, ExperimentStatus};
use crate::store::{Durability, ExperimentRecord, Store};
use crate::token::TrialSecret;
use crate::trial::{Observation, Trial};
use trial_run::{Attempts, Report, TrialContext};

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
    Launched {
        trial: &'a Trial,
        snapshot: Snapshot,
    },
    /// A running trial reported metrics (one output line's worth).
    Observed {
        trial: &'a Trial,
        observations: &'a [Observation],
    },
    Ended {
        trial: &'a Trial,
        snapshot: Snapshot,
    },
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
        let (mut core, mut search, mut attempts) = self.start(&mut record)?;
        // Pushed reports are judged by the API, which stores a stop with the trial: followed here so
        // that the trial is stopped at once (its process group ended, its Job deleted) even if it
        // does not heed `shouldStop`.
        let spec = &record.experiment.spec;
        let decisions =
            (spec.stopping().is_some() && spec.collector() == Collector::Push).then(|| self.store.watch_trials(name));
        let mut shell = Shell { controller: self, record, started: Instant::now(), progress };
        core.handle(Event::Halt(*halt.borrow_and_update()), Timestamp::now());
        loop {
            let mut commands = core
                .step(search.as_mut(), Timestamp::now())
                .map_err(|source| Error::Suggest { name: name.into(), source })?;
            // Nothing to do until an attempt reports or users ask for a halt.
            if commands.is_empty() {
                commands = tokio::select! {
                    report = attempts.next() => {
                        let (index, report) = report?;
                        shell.take_report(&mut core, &mut attempts, index, report).await?
                    }
                    next = next_halt(&mut halt) => core.handle(Event::Halt(next), Timestamp::now()),
                    changed = next_change(decisions.as_ref()) => {
                        let mut commands = Vec::new();
                        for index in changed {
                            commands.extend(shell.decided_elsewhere(&mut core, index)?);
                        }
                        commands
                    }
                };
            }
            if let Some(reason) = shell.carry_out(&mut core, &mut attempts, commands)? {
                return shell.finish(&core, reason);
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

    /// The step reports every trial made before this run, for the early-stopping rule.
    fn reports(&self, name: &str, spec: &crate::spec::ExperimentSpec, trials: &[Trial]) -> Result<experiment::Reports> {
        if spec.stopping().is_none() {
            return Ok(experiment::Reports::default());
        }
        let mut stored = std::collections::BTreeMap::new();
        for t in trials {
            let observations = self
                .store
                .observations(name, t.index)
                .map_err(|source| Error::LoadExperiment { name: name.into(), source })?;
            stored.insert(t.index, observations);
        }
        Ok(experiment::Reports::of(spec, trials, |i| stored.remove(&i).unwrap_or_default()))
    }

    fn save_trial(&self, trial: &Trial) -> Result<()> {
        self.store.put_trial(trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })
    }

    /// The core, the search and the attempts' shell for a stored experiment, marked running.
    fn start(&self, record: &mut ExperimentRecord) -> Result<(Core, Box<dyn Search>, Attempts<E>)> {
        let name = record.name().to_string();
        let spec = record.experiment.spec.clone();
        let status = record.experiment.status.get_or_insert_with(Default::default);
        let search =
            search::build(&spec, status.seed).map_err(|source| Error::BuildSearch { name: name.clone(), source })?;
        let search = timed::Timed::wrap(search, &spec);
        let parser = MetricParser::new(spec.metrics.format.as_deref())
            .map_err(|source| Error::MetricsFormat { name: name.clone(), source })?;
        let spec_dir = record.spec_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let working_dir = spec_dir.join(spec.trial.working_dir.as_deref().unwrap_or("."));
        let trials = self.store.trials(&name).map_err(|source| Error::LoadExperiment { name: name.clone(), source })?;
        let reports = self.reports(&name, &spec, &trials)?;
        let core = Core::new(&name, spec.clone(), trials).with_reports(reports);
        experiment::begin(status, Timestamp::now());
        core.refresh(status);
        self.save_status(record, Durability::Flushed)?;
        let ctx = TrialContext {
            name: name.clone(),
            incarnation: record.uid().to_string(),
            store: self.store.clone(),
            executor: Arc::clone(&self.executor),
            spec,
            parser,
            working_dir,
            experiment_dir: self.experiment_dir(&name),
            api: self.api.clone(),
            origin: record.origin.clone(),
        };
        Ok((core, search, Attempts::new(Arc::new(ctx))))
    }
}

/// One run of the loop: what carrying out the core's commands needs.
struct Shell<'a, E> {
    controller: &'a Controller<E>,
    record: ExperimentRecord,
    started: Instant,
    progress: &'a mut (dyn FnMut(Progress<'_>) + Send),
}

impl<E: Executor> Shell<'_, E> {
    /// Carries out `commands` in order; returns the end reason once the core says the loop is over.
    fn carry_out(
        &mut self,
        core: &mut Core,
        attempts: &mut Attempts<E>,
        commands: Vec<Command>,
    ) -> Result<Option<EndReason>> {
        for command in commands {
            match command {
                Command::Save(trial) => {
                    self.controller.save_trial(&trial)?;
                    // Counts and the best trial stay current while trials run, written when they
                    // change (a start, an end), not only when a trial ends.
                    let status = self.record.experiment.status.get_or_insert_with(Default::default);
                    let before = status.clone();
                    core.refresh(status);
                    if *status != before {
                        self.controller.save_status(&self.record, Durability::Lazy)?;
                    }
                }
                Command::Retry(trial) => {
                    info!(trial = %trial.name, attempt = trial.attempts, "trial lost; running it again");
                    crate::instruments::global().trial_started(timed::executor_label(core.spec().executor));
                    let dir = attempts.launch(&trial, false);
                    core.handle(Event::Launched { trial: trial.index, dir }, Timestamp::now());
                }
                Command::Launch(trial) => {
                    crate::instruments::global().trial_started(timed::executor_label(core.spec().executor));
                    let dir = attempts.launch(&trial, true);
                    core.handle(Event::Launched { trial: trial.index, dir }, Timestamp::now());
                    (self.progress)(Progress::Launched { trial: &trial, snapshot: snapshot(core, self.started) });
                }
                Command::Stop { trial, cause } => attempts.stop(trial, cause),
                Command::Ended(trial) => {
                    // Its Save, just before, brought the status up to date.
                    attempts.forget(trial.index);
                    instrument_end(&trial, core.spec());
                    (self.progress)(Progress::Ended { trial: &trial, snapshot: snapshot(core, self.started) });
                }
                Command::Finish(reason) => return Ok(Some(reason)),
            }
        }
        Ok(None)
    }

    /// Turns what an attempt reported into the core's events (and its output into observations).
    async fn take_report(
        &mut self,
        core: &mut Core,
        attempts: &mut Attempts<E>,
        index: u32,
        report: Report,
    ) -> Result<Vec<Command>> {
        let Some(attempt) = core.trial(index).map(|t| t.attempts) else { return Ok(Vec::new()) };
        let now = Timestamp::now();
        let event = match report {
            Report::Event(TrialEvent::Line { text, .. }) => {
                let observations = attempts.observe_line(index, attempt, &text)?;
                if observations.is_empty() {
                    return Ok(Vec::new());
                }
                if let Some(trial) = core.trial(index) {
                    (self.progress)(Progress::Observed { trial, observations: &observations });
                }
                Event::Observed { trial: index, observations }
            }
            Report::Event(TrialEvent::Started { pid, pid_stamp, gpus }) => {
                Event::Started { trial: index, pid, pid_stamp, gpus }
            }
            Report::Event(TrialEvent::Reattached) => Event::Reattached { trial: index },
            Report::Event(TrialEvent::Restarted) => Event::Rerun { trial: index },
            Report::Event(TrialEvent::Waiting { reason, message }) => Event::Waiting { trial: index, reason, message },
            Report::Ended(finished) => {
                let tally = attempts.tally(index, attempt).await?;
                let mut commands = self.decided_elsewhere(core, index)?;
                commands.extend(core.handle(Event::AttemptEnded { trial: index, finished, tally }, now));
                return Ok(commands);
            }
        };
        Ok(core.handle(event, now))
    }

    /// An early stop decided outside the loop (a push answered `shouldStop`) and stored with the
    /// trial, handed to the core before the attempt's end is judged.
    fn decided_elsewhere(&self, core: &mut Core, index: u32) -> Result<Vec<Command>> {
        if core.spec().stopping().is_none() || core.trial(index).is_none_or(|t| t.early_stop.is_some()) {
            return Ok(Vec::new());
        }
        let name = self.record.name();
        let stored = self
            .controller
            .store
            .trial(name, index)
            .map_err(|source| Error::SaveTrial { trial: crate::trial::trial_name(name, index), source })?;
        Ok(match stored.and_then(|t| t.early_stop) {
            Some(decision) => core.handle(Event::Decided { trial: index, decision }, Timestamp::now()),
            None => Vec::new(),
        })
    }

    fn finish(mut self, core: &Core, reason: EndReason) -> Result<ExperimentRecord> {
        info!(%reason, "experiment loop ended");
        let status = self.record.experiment.status.get_or_insert_with(Default::default);
        core.finish(status, reason, Timestamp::now());
        self.controller.save_status(&self.record, Durability::Flushed)?;
        Ok(self.record)
    }
}

/// Counts a trial's end by its final phase (`early_stopped`, …) and times its run.
fn instrument_end(trial: &Trial, spec: &crate::spec::ExperimentSpec) {
    let reason = serde_json::to_value(trial.phase).ok().and_then(|v| v.as_str().map(snake_case)).unwrap_or_default();
    let ran = trial.started_at.zip(trial.finished_at).map(|(s, f)| f.duration_since(s).as_secs_f64());
    crate::instruments::global().trial_ended(&reason, timed::executor_label(spec.executor), ran);
}

/// `EarlyStopped` → `early_stopped`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The trials written since the last look (forever pending when nothing is followed).
async fn next_change(changes: Option<&crate::store::Changes<u32>>) -> std::collections::BTreeSet<u32> {
    match changes {
        Some(changes) => changes.next().await,
        None => std::future::pending().await,
    }
}

/// The next halt users ask for (forever pending once its sender is gone).
async fn next_halt(halt: &mut watch::Receiver<Halt>) -> Halt {
    if halt.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    *halt.borrow_and_update()
}

fn snapshot(core: &Core, started: Instant) -> Snapshot {
    let c = core.counts();
    Snapshot {
        ended: c.ended(),
        max_trials: core.spec().max_trials,
        running: c.running,
        best: core.best().map(|t| (t.name.clone(), t.objective.unwrap_or_default())),
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests;
