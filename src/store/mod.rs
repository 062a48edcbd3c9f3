//! The embedded store: experiments, trials and observations in one sled database on disk.
//!
//! ```text
//! experiments   name                         → ExperimentRecord (JSON)
//! trials        name 0x00 index:u32be        → Trial (JSON)
//! observations  name 0x00 index:u32be seq:u64be → Observation (JSON)
//! meta          "schema"                     → schema version
//! ```
//! Every write of an experiment and every `put_trial` is flushed to disk before the call returns,
//! so what the controller acts on has been persisted. `write_trial`, observations and artifacts
//! reach the disk with the next flush: the API writes all a request needs, then `flush_writes`
//! once before answering.

mod codec;
mod notify;
mod private;
mod ranks;
mod revision;
pub mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use notify::Changes;
pub use revision::{Changed, MalformedRevision, Revision};

use crate::leaderboard::ranked_value;
use crate::spec::{Experiment, Goal};
use crate::trial::{Observation, Trial};

/// The most observations one trial keeps (all attempts together): a trial that reports more has the
/// rest dropped (and told so), so no trial can fill the disk with metrics.
#[cfg(not(test))]
pub const MAX_OBSERVATIONS: usize = 100_000;
/// Unit tests fill a trial to the cap; a smaller one keeps them fast (the rule is the same).
#[cfg(test)]
pub const MAX_OBSERVATIONS: usize = 1_000;

/// sled's page cache (its default is 1 GiB, which a large store fills): enough for the records a
/// server touches, a bound on its memory.
const CACHE_BYTES: u64 = 64 << 20;

/// The on-disk schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open the store at {path}: {}", snapshot::why(source))]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("failed to make the data dir {path} private to this user")]
    Private {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to copy the store at {path} to read it")]
    Snapshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store at {path} has schema version {found}; this build reads version {SCHEMA_VERSION}")]
    SchemaVersion { path: PathBuf, found: String },
    #[error("failed to read {what} from the store")]
    Read {
        what: String,
        #[source]
        source: sled::Error,
    },
    #[error("failed to write {what} to the store")]
    Write {
        what: String,
        #[source]
        source: sled::Error,
    },
    #[error("failed to decode {what} from the store")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to encode {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An experiment as stored: the document (with its status), where its relative paths start, and
/// what its users asked for. The controller writes only `experiment.status`; the API writes the
/// rest, each through `update_experiment`, so neither overwrites the other.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRecord {
    pub experiment: Experiment,
    /// The folder of the spec file; `trial.workingDir` is relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_dir: Option<PathBuf>,
    /// What users asked for: run, stop, or delete.
    #[serde(default)]
    pub desired: Desired,
    /// The search ran out of new points (recorded by whoever asked it).
    #[serde(default)]
    pub exhausted: bool,
    /// The custom resource this experiment came from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<KubeOrigin>,
    /// The model version being served (written by the promoter only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<crate::spec::Serving>,
    /// The last promotion or rollback a user asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_request: Option<PromotionRequest>,
    /// What became of it (same `id`), or of the automatic promotion (`id` 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_outcome: Option<PromotionOutcome>,
}

/// A user's request to promote a trial (the best when none is named) or roll back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequest {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// Roll back to this version (`Some(0)`: the one before the current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u32>,
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionOutcome {
    pub id: u64,
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Why it failed (`ok` false); the reason of the Experiment's `PromotionFailed` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PromotionFailure>,
}

/// Why a promotion or rollback did not make its version current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionFailure {
    /// Refused before anything was served: no such trial or version, the gate, no artifact, a
    /// Deployment that could not be applied.
    Refused,
    /// The new version's rollout failed and there was no earlier version to go back to.
    RolloutFailed,
    /// The new version's rollout failed and the version served before it serves again.
    RolledBack,
}

impl PromotionFailure {
    /// The CamelCase reason Kubernetes conditions and Events carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "Refused",
            Self::RolloutFailed => "RolloutFailed",
            Self::RolledBack => "RolledBack",
        }
    }
}

/// One entry of an experiment's promotion history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The model version this entry made current.
    pub version: u32,
    /// `promote` (a new version), `rollback` (an earlier one made current again) or `failed` (a
    /// new version whose rollout failed: it never served, and is no rollback target).
    pub action: String,
    pub trial: String,
    pub parameters: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    /// Where the model is: a folder under the data dir, or the URI the trial reported.
    pub model: String,
    pub time: jiff::Timestamp,
    /// Who asked: `auto`, or the API caller.
    pub by: String,
    /// Why, when tuna acted on its own: a failed rollout, and the automatic rollback after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A namespaced `Experiment` custom resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeOrigin {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Whether a write waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Flushed before the call returns: for anything acted on.
    Flushed,
    /// Reaches the disk with the next flush: for data derived from flushed records.
    Lazy,
}

/// The state users asked an experiment to be in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    #[default]
    Run,
    Stop,
    Delete,
}

impl ExperimentRecord {
    /// Moves the experiment gauges (phase, running trials, best objective) to this record: called
    /// on every write, and once per stored experiment when a server starts.
    pub fn instrument(&self) {
        let status = self.experiment.status.clone().unwrap_or_default();
        let best = status.best_trial.as_ref().map(|b| b.objective);
        let phase = format!("{:?}", status.phase);
        crate::instruments::global().experiment_written(self.name(), &phase, status.trials.running, best);
    }

    /// A new experiment, with a new incarnation: `metadata.uid` is drawn afresh (whatever the
    /// document said), so an experiment created again under an old name is a different one to
    /// every token and Job of the old.
    pub fn new(mut experiment: Experiment, spec_dir: Option<PathBuf>) -> Self {
        experiment.metadata.uid = Some(format!("{:032x}", rand::random::<u128>()));
        Self {
            experiment,
            spec_dir,
            desired: Desired::Run,
            exhausted: false,
            origin: None,
            serving: None,
            promotion_request: None,
            promotion_outcome: None,
        }
    }

    pub fn name(&self) -> &str {
        self.experiment.metadata.name.as_deref().unwrap_or_default()
    }

    /// The experiment's incarnation (`metadata.uid`): a custom resource's UID, else drawn when it
    /// was created; empty for a record stored before incarnations existed.
    pub fn uid(&self) -> &str {
        self.experiment.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The experiment as users see it: its status with what is being served.
    pub fn view(&self) -> Experiment {
        let mut experiment = self.experiment.clone();
        if self.serving.is_some() {
            experiment.status.get_or_insert_with(Default::default).serving = self.serving.clone();
        }
        experiment
    }
}

/// A handle on the database; cheap to clone and safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    experiments: sled::Tree,
    trials: sled::Tree,
    observations: sled::Tree,
    promotions: sled::Tree,
    artifacts: sled::Tree,
    /// Who wants to hear of changes (never holds up a write).
    notices: Arc<notify::Notices>,
    /// Observations stored per trial, counted once from the disk and then kept up to date.
    observation_counts: Arc<Mutex<HashMap<(String, u32), usize>>>,
    /// The leaderboard's order per experiment, kept on write once asked for.
    ranks: Arc<ranks::Ranks>,
    /// Orders moving the experiment gauges after a write against a delete: without it, a write
    /// that raced a delete could put back the series of an experiment that is gone.
    instrumenting: Arc<Mutex<()>>,
    /// Each experiment's revision, bumped on every write of it, its trials or observations.
    revisions: Arc<revision::Revisions>,
}

impl Store {
    /// Opens (or creates) the store under `dir`. The data dir and the database are made private to
    /// the user running tuna (folders 0700, files 0600, whatever the umask, as etcd does): the
    /// stored documents carry trials' `env` values, which may be credentials.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("db");
        private::private_dirs(dir, &path).map_err(|source| Error::Private { path: dir.to_path_buf(), source })?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| Error::Open { path: path.clone(), source })?;
        let tree = |name: &str| db.open_tree(name).map_err(|source| Error::Open { path: path.clone(), source });
        let (experiments, trials, observations, meta) =
            (tree("experiments")?, tree("trials")?, tree("observations")?, tree("meta")?);
        let promotions = tree("promotions")?;
        let artifacts = tree("artifacts")?;
        let read = |source| Error::Read { what: "the schema version".into(), source };
        match meta.get("schema").map_err(read)? {
            None => {
                meta.insert("schema", SCHEMA_VERSION.to_string().as_bytes())
                    .map_err(|source| Error::Write { what: "the schema version".into(), source })?;
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_string().as_bytes() => {}
            Some(v) => return Err(Error::SchemaVersion { path, found: String::from_utf8_lossy(&v).into_owned() }),
        }
        private::private_files(&path).map_err(|source| Error::Private { path: dir.to_path_buf(), source })?;
        let store = Self {
            db,
            experiments,
            trials,
            observations,
            promotions,
            artifacts,
            notices: Default::default(),
            observation_counts: Default::default(),
            instrumenting: Default::default(),
            ranks: Default::default(),
            revisions: Default::default(),
        };
        store.flush("the schema version")?;
        Ok(store)
    }

    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        let what = || format!("experiment {name}");
        let bytes = self.experiments.get(name).map_err(|source| Error::Read { what: what(), source })?;
        bytes.map(|b| codec::decode(&b, what)).transpose()
    }

    /// Every experiment's name, without reading the records.
    pub fn experiment_names(&self) -> Result<Vec<String>> {
        let read = |source| Error::Read { what: "the experiment names".into(), source };
        self.experiments.iter().keys().map(|k| Ok(String::from_utf8_lossy(&k.map_err(read)?).into_owned())).collect()
    }

    /// Moves the experiment gauges to a record just written, unless it has been deleted since.
    fn instrument(&self, record: &ExperimentRecord) {
        let _order = self.instrumenting.lock().unwrap_or_else(|e| e.into_inner());
        if self.experiments.contains_key(record.name()).unwrap_or(false) {
            record.instrument();
        }
    }

    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        scan(&self.experiments, b"", || "the experiments".to_string())
    }

    /// Writes an experiment and flushes it to disk.
    pub fn put_experiment(&self, record: &ExperimentRecord) -> Result<()> {
        let what = format!("experiment {}", record.name());
        let bytes = codec::encode(record, &what)?;
        self.experiments.insert(record.name(), bytes).map_err(|source| Error::Write { what: what.clone(), source })?;
        self.revisions.wrote(record.name(), None);
        self.notices.experiment_changed(record.name());
        self.instrument(record);
        self.flush(&what)
    }

    /// Stores a new experiment; `false` (and nothing written) when the name is taken.
    pub fn create_experiment(&self, record: &ExperimentRecord) -> Result<bool> {
        let what = format!("experiment {}", record.name());
        let bytes = codec::encode(record, &what)?;
        let swapped = self
            .experiments
            .compare_and_swap(record.name(), None::<&[u8]>, Some(bytes))
            .map_err(|source| Error::Write { what: what.clone(), source })?;
        if swapped.is_ok() {
            self.revisions.wrote(record.name(), None);
        }
        self.notices.experiment_changed(record.name());
        if swapped.is_ok() {
            self.instrument(record);
        }
        self.flush(&what)?;
        Ok(swapped.is_ok())
    }

    /// Changes a stored experiment atomically; `None` when there is no such experiment. `change`
    /// may run more than once (on a concurrent write) and must be pure.
    pub fn update_experiment(
        &self,
        name: &str,
        durability: Durability,
        change: impl Fn(&mut ExperimentRecord),
    ) -> Result<Option<ExperimentRecord>> {
        let what = || format!("experiment {name}");
        let mut failure = None;
        let updated = self
            .experiments
            .update_and_fetch(name, |old| {
                let old = old?;
                let mut record: ExperimentRecord = match codec::decode(old, what) {
                    Ok(r) => r,
                    Err(e) => {
                        failure = Some(e);
                        return Some(old.to_vec());
                    }
                };
                change(&mut record);
                match codec::encode(&record, &what()) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        failure = Some(e);
                        Some(old.to_vec())
                    }
                }
            })
            .map_err(|source| Error::Write { what: what(), source })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if updated.is_some() {
            self.revisions.wrote(name, None);
            self.notices.experiment_changed(name);
        }
        if durability == Durability::Flushed {
            self.flush(&what())?;
        }
        let record: Option<ExperimentRecord> = updated.map(|bytes| codec::decode(&bytes, what)).transpose()?;
        record.as_ref().inspect(|r| self.instrument(r));
        Ok(record)
    }

    /// The names of the experiments written (or deleted) since the subscriber last looked, for
    /// whoever reconciles them. A subscriber never holds up a write, however slowly it looks.
    pub fn watch_experiments(&self) -> Changes {
        self.notices.experiments()
    }

    /// The indexes of one experiment's trials written since the subscriber last looked.
    pub fn watch_trials(&self, experiment: &str) -> Changes<u32> {
        self.notices.trials(experiment)
    }

    /// The experiment's revision now: it changes with every write of the experiment, its trials or
    /// their observations, and never repeats (not across restarts either: see `revision.rs`).
    /// Memory only, no read of the disk.
    pub fn revision(&self, experiment: &str) -> Revision {
        self.revisions.revision(experiment)
    }

    /// The revision now and which trials were written (or had observations added) after `since`;
    /// [`Changed::All`] when that is not known here (a revision of another process, or from before
    /// anyone asked about this experiment).
    pub fn changed_since(&self, experiment: &str, since: Revision) -> (Revision, Changed) {
        self.revisions.changed_since(experiment, since)
    }

    /// Removes an experiment with its trials and observations.
    pub fn delete_experiment(&self, name: &str) -> Result<()> {
        let what = format!("experiment {name}");
        let prefix = codec::experiment_prefix(name);
        for tree in [&self.trials, &self.observations, &self.promotions, &self.artifacts] {
            for key in tree.scan_prefix(&prefix).keys() {
                let key = key.map_err(|source| Error::Read { what: what.clone(), source })?;
                tree.remove(key).map_err(|source| Error::Write { what: what.clone(), source })?;
            }
        }
        {
            let _order = self.instrumenting.lock().unwrap_or_else(|e| e.into_inner());
            self.experiments.remove(name).map_err(|source| Error::Write { what: what.clone(), source })?;
            crate::instruments::global().experiment_deleted(name);
        }
        self.observation_counts.lock().unwrap_or_else(|e| e.into_inner()).retain(|(e, _), _| e != name);
        self.ranks.forget(name);
        self.revisions.deleted(name);
        self.notices.experiment_changed(name);
        self.flush(&what)
    }

    /// Every trial of an experiment, by index.
    pub fn trials(&self, experiment: &str) -> Result<Vec<Trial>> {
        scan(&self.trials, codec::experiment_prefix(experiment), || format!("the trials of {experiment}"))
    }

    /// Every trial of an experiment, by index, each decoded as it is read and handed to `each`: no
    /// list of them all is held (at 100,000 trials such a list is ~150 MB that the allocator keeps).
    pub fn for_each_trial(&self, experiment: &str, mut each: impl FnMut(Trial)) -> Result<()> {
        let what = || format!("the trials of {experiment}");
        for value in self.trials.scan_prefix(codec::experiment_prefix(experiment)).values() {
            let value = value.map_err(|source| Error::Read { what: what(), source })?;
            each(codec::decode(&value, what)?);
        }
        Ok(())
    }

    /// Up to `limit` trials of an experiment after index `after` (from the first when `None`),
    /// by index; with the index to continue after when more follow.
    pub fn trials_page(&self, experiment: &str, after: Option<u32>, limit: usize) -> Result<(Vec<Trial>, Option<u32>)> {
        let prefix = codec::experiment_prefix(experiment);
        let start = match after {
            Some(u32::MAX) => return Ok((Vec::new(), None)),
            Some(i) => codec::trial_key(experiment, i + 1),
            None => prefix.clone(),
        };
        let (page, more) = page(&self.trials, &prefix, start, limit, || format!("the trials of {experiment}"))?;
        let next = more.then(|| page.last().map(|(_, t): &(_, Trial)| t.index)).flatten();
        Ok((page.into_iter().map(|(_, t)| t).collect(), next))
    }

    /// The `n` best succeeded trials of an experiment in the leaderboard's order (by objective in
    /// the goal's direction, ties by index), read through the ranking kept on write: `n` reads,
    /// not a scan. `None` when the ranking and a trial's record disagree (a write raced the
    /// ranking's update; the entry is repaired): read every trial instead.
    pub fn ranked(&self, experiment: &str, goal: Goal, n: usize) -> Result<Option<Vec<Trial>>> {
        let build = || -> Result<ranks::Ranking> {
            let mut ranking = ranks::Ranking::default();
            self.for_each_trial(experiment, |trial| ranking.set(trial.index, ranked_value(&trial)))?;
            Ok(ranking)
        };
        let ranked = self.ranks.with(experiment, build, |ranking| ranking.top(goal, n))?;
        let mut top = Vec::with_capacity(ranked.len());
        for (index, key) in ranked {
            let trial = self.trial(experiment, index)?;
            let value = trial.as_ref().and_then(ranked_value);
            match trial {
                Some(trial) if value.map(ranks::order_key) == Some(key) => top.push(trial),
                _ => {
                    self.ranks.note(experiment, index, value);
                    return Ok(None);
                }
            }
        }
        Ok(Some(top))
    }

    pub fn trial(&self, experiment: &str, index: u32) -> Result<Option<Trial>> {
        let what = || format!("trial {index} of {experiment}");
        let bytes = self
            .trials
            .get(codec::trial_key(experiment, index))
            .map_err(|source| Error::Read { what: what(), source })?;
        bytes.map(|b| codec::decode(&b, what)).transpose()
    }

    /// The trials `indexes` of an experiment, in that order; one absent from the store is left out
    /// (what `changed_since` names may have been deleted since).
    pub fn trials_at(&self, experiment: &str, indexes: &[u32]) -> Result<Vec<Trial>> {
        let mut trials = Vec::with_capacity(indexes.len());
        for &index in indexes {
            trials.extend(self.trial(experiment, index)?);
        }
        Ok(trials)
    }

    /// Writes a trial (and any observations added before it) and flushes them to disk.
    pub fn put_trial(&self, trial: &Trial) -> Result<()> {
        self.write_trial(trial)?;
        self.flush(&format!("trial {}", trial.name))
    }

    /// Writes a trial, visible to readers at once; it reaches the disk with the next flush.
    pub fn write_trial(&self, trial: &Trial) -> Result<()> {
        let what = format!("trial {}", trial.name);
        let bytes = codec::encode(trial, &what)?;
        self.trials
            .insert(codec::trial_key(&trial.experiment, trial.index), bytes)
            .map_err(|source| Error::Write { what, source })?;
        self.ranks.note(&trial.experiment, trial.index, ranked_value(trial));
        self.revisions.wrote(&trial.experiment, Some(trial.index));
        self.notices.trial_changed(&trial.experiment, trial.index);
        Ok(())
    }

    /// Changes a trial only as it is now: `change` edits the trial just read (or refuses, with its
    /// own error), and the result is written by compare-and-swap, so of two writers racing for one
    /// trial (two tells, a tell and a deadline) exactly one wins and the other sees the winner's
    /// trial. `change` may run more than once. `None` when there is no such trial; otherwise the
    /// trial as written, or the refusal.
    /// Like [`Store::write_trial`], it reaches the disk with the next flush.
    pub fn change_trial<E>(
        &self,
        experiment: &str,
        index: u32,
        mut change: impl FnMut(&mut Trial) -> std::result::Result<(), E>,
    ) -> Result<Option<std::result::Result<Trial, E>>> {
        let key = codec::trial_key(experiment, index);
        let what = || format!("trial {index} of {experiment}");
        loop {
            let Some(old) = self.trials.get(&key).map_err(|source| Error::Read { what: what(), source })? else {
                return Ok(None);
            };
            let mut trial: Trial = codec::decode(&old, what)?;
            if let Err(refusal) = change(&mut trial) {
                return Ok(Some(Err(refusal)));
            }
            let bytes = codec::encode(&trial, &what())?;
            let swapped = self
                .trials
                .compare_and_swap(&key, Some(old), Some(bytes))
                .map_err(|source| Error::Write { what: what(), source })?;
            if swapped.is_ok() {
                self.ranks.note(experiment, index, ranked_value(&trial));
                self.revisions.wrote(experiment, Some(index));
                self.notices.trial_changed(experiment, index);
                return Ok(Some(Ok(trial)));
            }
        }
    }

    /// Appends observations of one trial, up to [`MAX_OBSERVATIONS`] in all; returns how many were
    /// kept (the rest are dropped). They reach the disk with the next flush.
    pub fn add_observations(&self, experiment: &str, index: u32, observations: &[Observation]) -> Result<usize> {
        let what = format!("observations of trial {index} of {experiment}");
        let mut counts = self.observation_counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts
            .entry((experiment.to_string(), index))
            .or_insert_with(|| self.observations.scan_prefix(codec::trial_key(experiment, index)).count());
        let kept = observations.len().min(MAX_OBSERVATIONS.saturating_sub(*count));
        *count += kept;
        drop(counts);
        for observation in &observations[..kept] {
            let seq = self.db.generate_id().map_err(|source| Error::Write { what: what.clone(), source })?;
            self.observations
                .insert(codec::observation_key(experiment, index, seq), codec::encode(observation, &what)?)
                .map_err(|source| Error::Write { what: what.clone(), source })?;
        }
        if kept > 0 {
            self.revisions.wrote(experiment, Some(index));
        }
        Ok(kept)
    }

    /// Records where a trial's model is (a URI it reported); it reaches the disk with the next flush.
    pub fn set_artifact(&self, experiment: &str, index: u32, uri: &str) -> Result<()> {
        let what = format!("the artifact of trial {index} of {experiment}");
        self.artifacts
            .insert(codec::trial_key(experiment, index), uri.as_bytes())
            .map(|_| ())
            .map_err(|source| Error::Write { what, source })
    }

    /// The model URI a trial reported, if it did.
    pub fn artifact(&self, experiment: &str, index: u32) -> Result<Option<String>> {
        let what = format!("the artifact of trial {index} of {experiment}");
        let bytes =
            self.artifacts.get(codec::trial_key(experiment, index)).map_err(|source| Error::Read { what, source })?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Appends an entry to an experiment's promotion history and flushes it.
    pub fn add_promotion(&self, experiment: &str, promotion: &Promotion) -> Result<()> {
        let what = format!("a promotion of {experiment}");
        let seq = self.db.generate_id().map_err(|source| Error::Write { what: what.clone(), source })?;
        let mut key = codec::experiment_prefix(experiment);
        key.extend_from_slice(&seq.to_be_bytes());
        self.promotions
            .insert(key, codec::encode(promotion, &what)?)
            .map_err(|source| Error::Write { what: what.clone(), source })?;
        self.flush(&what)
    }

    /// An experiment's promotion history, oldest first.
    pub fn promotions(&self, experiment: &str) -> Result<Vec<Promotion>> {
        scan(&self.promotions, codec::experiment_prefix(experiment), || format!("the promotions of {experiment}"))
    }

    /// Flushes every write so far (trials, observations, artifacts: one database), so a request is
    /// acknowledged only once what it wrote is on disk.
    pub fn flush_writes(&self) -> Result<()> {
        self.flush("the latest writes")
    }

    /// Up to `limit` observations of one trial after the cursor `after` (from the first when
    /// `None`), in the order they were reported; with the cursor to continue after when more follow.
    pub fn observations_page(
        &self,
        experiment: &str,
        index: u32,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Observation>, Option<u64>)> {
        let prefix = codec::trial_key(experiment, index);
        let start = match after {
            Some(u64::MAX) => return Ok((Vec::new(), None)),
            Some(seq) => codec::observation_key(experiment, index, seq + 1),
            None => prefix.clone(),
        };
        let what = || format!("observations of trial {index} of {experiment}");
        let (page, more) = page(&self.observations, &prefix, start, limit, what)?;
        let next = more.then(|| page.last().and_then(|(key, _)| codec::seq_of(key))).flatten();
        Ok((page.into_iter().map(|(_, o)| o).collect(), next))
    }

    /// Every observation of one trial, in the order they were reported.
    pub fn observations(&self, experiment: &str, index: u32) -> Result<Vec<Observation>> {
        scan(&self.observations, codec::trial_key(experiment, index), || {
            format!("observations of trial {index} of {experiment}")
        })
    }

    fn flush(&self, what: &str) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|source| Error::Write { what: what.to_string(), source })
    }
}

/// Up to `limit` values under `prefix` from the key `start` on, decoded with their keys, and
/// whether more follow.
fn page<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    prefix: &[u8],
    start: Vec<u8>,
    limit: usize,
    what: impl Fn() -> String,
) -> Result<(Vec<(sled::IVec, T)>, bool)> {
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in tree.range(start..) {
        let (key, value) = entry.map_err(|source| Error::Read { what: what(), source })?;
        if !key.starts_with(prefix) {
            break;
        }
        if page.len() == limit {
            return Ok((page, true));
        }
        let decoded = codec::decode(&value, &what)?;
        page.push((key, decoded));
    }
    Ok((page, false))
}

/// Every value under `prefix` in key order, decoded.
fn scan<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    prefix: impl AsRef<[u8]>,
    what: impl Fn() -> String,
) -> Result<Vec<T>> {
    tree.scan_prefix(prefix)
        .values()
        .map(|v| codec::decode(&v.map_err(|source| Error::Read { what: what(), source })?, &what))
        .collect()
}

#[cfg(test)]
impl Store {
    fn meta_for_test(&self) -> sled::Tree {
        self.db.open_tree("meta").unwrap()
    }

    /// Overwrites a trial's record with bytes that do not decode, bypassing every bookkeeping of a
    /// write (no revision, no notice): a reader that reads that trial then fails, which shows
    /// whether it read it.
    pub(crate) fn corrupt_trial_for_test(&self, experiment: &str, index: u32) {
        self.trials.insert(codec::trial_key(experiment, index), b"not json".as_slice()).unwrap();
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
