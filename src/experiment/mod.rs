//! The experiment core: one experiment's life as a state machine, decided here and nowhere else.
//! Pure and synchronous: no I/O, no clock (the caller passes `now`), no tasks. The shells above it
//! (the local/Kubernetes loop in `controller`, the ask/tell handlers in `api`, the supervisor and the
//! custom-resource reconciler) turn I/O into [`Event`]s and carry out the [`Command`]s they get back.
//!
//! ```text
//!            Event (halt, launched, started, waiting, reattached, attempt ended, stop one)
//!   shell ─────────────────────────────────────────────────────────────▶ Core::handle
//!     ▲                                                                      │
//!     │      Command (save, launch, stop one, ended, finish)                 │
//!     └────────────────────────────── Core::step (plan::next_step, Search) ◀─┘
//! ```
//! The rules live in the submodules, each usable alone by a shell that has no loop (ask/tell):
//! `plan` (budget, parallelism, end reasons), `verdict` (an attempt's, a tell's, a deadline's),
//! `status` (counts, best, every phase change), `history` (what the search sees), `external`
//! (ask/tell experiments).

mod early;
mod external;
mod history;
mod plan;
mod status;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use early::Reports;
pub use external::{Ledger, Review, asked, review};
pub use history::{history, past};
pub use plan::{Counts, Halt, Limits, Step, next_step, room_for};
pub use status::{begin, best, counts, end_with, finish, refresh, refused, reopen};
pub use verdict::{Told, Verdict, early_stopped, expired, judge, record_result, requeue, told};

use crate::metrics::Tally;
use crate::search::{self, Past, Search};
use crate::spec::{EndReason, ExperimentSpec, ExperimentStatus};
use crate::trial::{EarlyStop, Exit, Finished, Observation, Trial, TrialPhase, TrialReason};

/// What happened, as the shell saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Users (or the controller's shutdown) ask the experiment to stop or pause.
    Halt(Halt),
    /// An attempt of the trial was handed to the executor; its files are in `dir`.
    Launched { trial: u32, dir: String },
    /// The attempt's process started, with these devices (`pid_stamp`: see `Trial::pid_stamp`).
    Started { trial: u32, pid: u32, pid_stamp: Option<String>, gpus: Vec<u32> },
    /// The attempt follows one a previous controller started: the same attempt, not a new one.
    Reattached { trial: u32 },
    /// The executor ran the trial's program again by itself (Kubernetes replaced a disrupted pod):
    /// a new attempt, with no launch, whose reports alone count from here on.
    Rerun { trial: u32 },
    /// The attempt has not started yet, and why (e.g. `Unschedulable`).
    Waiting { trial: u32, reason: String, message: String },
    /// The attempt ended; `tally` is everything it reported.
    AttemptEnded { trial: u32, finished: Finished, tally: Tally },
    /// Stop this one trial (the rest go on).
    Stop { trial: u32, cause: TrialReason },
    /// The running trial reported these values (one output line's worth): the early-stopping rule
    /// judges its latest step report.
    Observed { trial: u32, observations: Vec<Observation> },
    /// The early-stopping rule stopped the trial outside the loop (a push was answered
    /// `shouldStop`): its attempt ends `EarlyStopped`.
    Decided { trial: u32, decision: EarlyStop },
}

/// What the shell is to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Store the trial as it now is, before anything else is done with it.
    Save(Trial),
    /// Start the trial's first attempt in this run (it is saved).
    Launch(Trial),
    /// Start the next attempt of a trial lost for a reason outside it, with retries left.
    Retry(Trial),
    /// Stop one running trial.
    Stop { trial: u32, cause: TrialReason },
    /// The trial reached its outcome for this run (saved by the command before).
    Ended(Trial),
    /// Every trial is back: the experiment ends (or, for `ControllerShutdown`, pauses) with this
    /// reason, and the loop is over.
    Finish(EndReason),
}

/// One experiment run by a loop: its trials, those handed to the executor, and the end once decided.
pub struct Core {
    name: String,
    spec: ExperimentSpec,
    /// Every trial, by index.
    trials: Vec<Trial>,
    /// Trials with an attempt handed to the executor and not back yet.
    active: BTreeSet<u32>,
    /// The stop sent to each active trial that was asked to stop.
    stops: BTreeMap<u32, TrialReason>,
    /// Every trial's step reports of the objective, for the early-stopping rule.
    reports: Reports,
    exhausted: bool,
    halt: Halt,
    /// The end, once decided: later trial ends do not change it.
    ending: Option<EndReason>,
    finished: bool,
}

impl Core {
    /// The experiment `name` with its stored trials (sorted by index, as the store keeps them).
    pub fn new(name: &str, spec: ExperimentSpec, trials: Vec<Trial>) -> Self {
        Self {
            name: name.to_string(),
            spec,
            trials,
            active: BTreeSet::new(),
            stops: BTreeMap::new(),
            reports: Reports::default(),
            exhausted: false,
            halt: Halt::Run,
            ending: None,
            finished: false,
        }
    }

    /// The step reports the trials made before this run (see `Reports::of`), for the
    /// early-stopping rule: rung memberships and medians survive a restart.
    pub fn with_reports(mut self, reports: Reports) -> Self {
        self.reports = reports;
        self
    }

    pub fn spec(&self) -> &ExperimentSpec {
        &self.spec
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    pub fn trial(&self, index: u32) -> Option<&Trial> {
        self.trials.get(index as usize)
    }

    pub fn counts(&self) -> Counts {
        counts(&self.spec, &self.trials, &self.active, self.exhausted)
    }

    pub fn best(&self) -> Option<&Trial> {
        best(&self.spec, &self.trials)
    }

    pub fn history(&self) -> Vec<Past> {
        history(&self.spec, &self.trials)
    }

    /// Brings `status`'s counts and best trial up to date (active trials count as running).
    pub fn refresh(&self, status: &mut ExperimentStatus) {
        refresh(status, &self.spec, &self.trials, &self.active);
    }

    /// Writes the end into `status`.
    pub fn finish(&self, status: &mut ExperimentStatus, reason: EndReason, now: Timestamp) {
        finish(status, &self.spec, &self.trials, reason, now);
    }

    /// Takes in what happened; returns what to do about it.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Vec<Command> {
        match event {
            Event::Halt(halt) => {
                self.halt = halt;
                Vec::new()
            }
            Event::Stop { trial, cause } => self.stop(trial, cause).into_iter().collect(),
            Event::Observed { trial, observations } => self.observed(trial, &observations),
            Event::Decided { trial, decision } => self.decided(trial, decision),
            Event::AttemptEnded { trial, finished, tally } => self.attempt_ended(trial, &finished, &tally, now),
            Event::Launched { trial, dir } => {
                if let Some(t) = self.active_trial(trial) {
                    t.dir = Some(dir);
                }
                Vec::new()
            }
            Event::Reattached { trial } => {
                if let Some(t) = self.active_trial(trial) {
                    t.attempts = t.attempts.saturating_sub(1).max(1);
                }
                Vec::new()
            }
            Event::Rerun { trial } => self.change(trial, |t| t.attempts += 1),
            Event::Started { trial, pid, pid_stamp, gpus } => self.change(trial, |t| {
                t.pid_stamp = pid_stamp;
                t.move_to(TrialPhase::Running);
                t.reason = None;
                t.message = None;
                t.started_at.get_or_insert(now);
                t.pid = Some(pid);
                t.gpus = gpus;
            }),
            Event::Waiting { trial, reason, message } => self.change(trial, |t| {
                t.reason = Some(TrialReason::from(reason.as_str()));
                t.message = Some(message);
            }),
        }
    }

    /// Decides what comes next: trials to launch (queued ones first, then new suggestions from
    /// `search`), stops, or the end once every trial is back.
    pub fn step(&mut self, search: &mut dyn Search, now: Timestamp) -> search::Result<Vec<Command>> {
        if self.finished {
            return Ok(Vec::new());
        }
        if let Some(reason) = self.ending.clone() {
            return Ok(self.finish_when_idle(reason).into_iter().collect());
        }
        let exhausted = search::exhausted_reason(&self.spec.algorithm.name);
        match next_step(self.counts(), Limits::of(&self.spec), self.halt, &exhausted) {
            Step::Launch(n) => {
                let commands = self.launch(n, search, now)?;
                // Nothing to launch: the search just ran dry, which changes the decision.
                if commands.is_empty() && self.exhausted { self.step(search, now) } else { Ok(commands) }
            }
            Step::Wait => Ok(Vec::new()),
            Step::Finish { reason, stop_running } => {
                let mut commands = Vec::new();
                if stop_running {
                    let cause = stop_cause(&reason);
                    let active: Vec<u32> = self.active.iter().copied().collect();
                    commands.extend(active.into_iter().filter_map(|i| self.stop(i, cause.clone())));
                }
                self.ending = Some(reason.clone());
                commands.extend(self.finish_when_idle(reason));
                Ok(commands)
            }
        }
    }

    fn finish_when_idle(&mut self, reason: EndReason) -> Option<Command> {
        (self.active.is_empty()).then(|| {
            self.finished = true;
            Command::Finish(reason)
        })
    }

    /// Picks `n` trials to start: queued ones first, then new suggestions (saved before launched).
    fn launch(&mut self, n: u32, search: &mut dyn Search, now: Timestamp) -> search::Result<Vec<Command>> {
        let mut picked: Vec<u32> = self
            .trials
            .iter()
            .filter(|t| t.phase == TrialPhase::Pending && !self.active.contains(&t.index))
            .take(n as usize)
            .map(|t| t.index)
            .collect();
        let mut commands = Vec::new();
        let wanted = n as usize - picked.len();
        if wanted > 0 {
            let fresh = search.suggest(&self.history(), wanted)?;
            self.exhausted |= fresh.len() < wanted && search.exhausts_when_short();
            for parameters in fresh {
                let trial = Trial::new(&self.name, self.trials.len() as u32, parameters, now);
                picked.push(trial.index);
                commands.push(Command::Save(trial.clone()));
                self.trials.push(trial);
            }
        }
        for index in picked {
            self.active.insert(index);
            commands.extend(self.next_attempt(index).map(Command::Launch));
        }
        Ok(commands)
    }

    /// A new attempt of an active trial.
    fn next_attempt(&mut self, index: u32) -> Option<Trial> {
        let trial = self.active_trial(index)?;
        trial.attempts += 1;
        Some(trial.clone())
    }

    fn stop(&mut self, index: u32, cause: TrialReason) -> Option<Command> {
        if !self.active.contains(&index) || self.stops.contains_key(&index) {
            return None;
        }
        self.stops.insert(index, cause.clone());
        Some(Command::Stop { trial: index, cause })
    }

    /// Judges an active trial's new reports with the early-stopping rule; a stop is saved with the
    /// trial before it is sent.
    fn observed(&mut self, index: u32, observations: &[Observation]) -> Vec<Command> {
        if !self.active.contains(&index) || !self.reports.add(&self.spec, index, observations) {
            return Vec::new();
        }
        if self.stops.contains_key(&index) {
            return Vec::new();
        }
        match self.reports.decide(&self.spec, &self.trials, index) {
            Some(decision) => self.decided(index, decision),
            None => Vec::new(),
        }
    }

    /// Records an early-stopping decision on an active trial (saved first), then stops it.
    fn decided(&mut self, index: u32, decision: EarlyStop) -> Vec<Command> {
        let Some(trial) = self.active_trial(index).filter(|t| t.early_stop.is_none()) else { return Vec::new() };
        trial.early_stop = Some(decision);
        let saved = Command::Save(trial.clone());
        [Some(saved), self.stop(index, TrialReason::EarlyStopped)].into_iter().flatten().collect()
    }

    fn attempt_ended(&mut self, index: u32, finished: &Finished, tally: &Tally, now: Timestamp) -> Vec<Command> {
        let stop = self.stops.get(&index).cloned();
        let spec = &self.spec;
        let Some(trial) = self.trials.get_mut(index as usize).filter(|_| self.active.contains(&index)) else {
            return Vec::new();
        };
        let verdict = judge(spec, finished, tally, trial.attempts, stop.as_ref(), trial.early_stop.as_ref());
        if trial.phase == TrialPhase::Pending && ran(&finished.exit) {
            // An attempt that exited has run, even if its start was never reported.
            trial.move_to(TrialPhase::Running);
            trial.started_at.get_or_insert(now);
        }
        record_result(trial, spec, tally);
        trial.exit_code = match finished.exit {
            Exit::Code(code) => Some(code),
            _ => None,
        };
        if verdict.retry {
            trial.move_to(TrialPhase::Pending);
            let saved = Command::Save(trial.clone());
            return [Some(saved), self.next_attempt(index).map(Command::Retry)].into_iter().flatten().collect();
        }
        verdict.conclude(trial, now);
        let ended = trial.clone();
        self.active.remove(&index);
        self.stops.remove(&index);
        vec![Command::Save(ended.clone()), Command::Ended(ended)]
    }

    /// Changes an active trial and saves it.
    fn change(&mut self, index: u32, change: impl FnOnce(&mut Trial)) -> Vec<Command> {
        let Some(trial) = self.active_trial(index) else { return Vec::new() };
        change(trial);
        vec![Command::Save(trial.clone())]
    }

    fn active_trial(&mut self, index: u32) -> Option<&mut Trial> {
        self.trials.get_mut(index as usize).filter(|_| self.active.contains(&index))
    }
}

/// Whether an attempt that ended this way had started.
fn ran(exit: &Exit) -> bool {
    matches!(exit, Exit::Code(_) | Exit::Signal(_) | Exit::TimedOut)
}

/// The reason written on a trial stopped because the experiment ends (or pauses) for `reason`.
fn stop_cause(reason: &EndReason) -> TrialReason {
    match reason {
        EndReason::StoppedByUser => TrialReason::StoppedByUser,
        EndReason::ControllerShutdown => TrialReason::ControllerShutdown,
        EndReason::GoalReached => TrialReason::ExperimentGoalReached,
        EndReason::TooManyFailures => TrialReason::TooManyFailures,
        other => TrialReason::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
