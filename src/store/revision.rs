//! Revisions: a cheap answer to "has this experiment changed since I last looked, and which of its
//! trials?", kept in memory beside the store so that a reader who has seen everything reads nothing.
//!
//! ```text
//! write(experiment[, trial]) ──▶ seq += 1; latest[experiment] = seq; watched[experiment].trials[trial] = seq
//! revision(experiment)       ──▶ epoch-latest[experiment]          (an ETag)
//! changed_since(experiment, epoch-s) ──▶ the trials with seq > s, or All (s unknown: from another
//!                                      process, or older than what is kept)
//! ```
//! One sequence counts every write of every experiment, so no value is ever repeated within a
//! process, not even by an experiment deleted and created again; the epoch, drawn at random when
//! the store is opened, makes a revision handed out by an earlier process (or another replica)
//! unknown here rather than mistaken for one of ours. Nothing is persisted: after a restart every
//! reader gets the full data once, then deltas again.
//!
//! Per-trial revisions are kept only for experiments someone asked deltas of (built lazily, on the
//! first ask, starting from the experiment's revision then): a server holding many finished
//! experiments keeps one number for each. A delete forgets the experiment's trials, so a reader of
//! the deleted one is told All.
//!
//! Every mark is made after its write is visible to readers, and a reader takes the revision
//! before it reads: a reader may see a write newer than the revision it was handed (and then gets
//! that trial again next time: merging is idempotent), never an older one missed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// One experiment's state as of some write: `epoch-seq`, the form of an `ETag` (quoted there)
/// and of `?since=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revision {
    epoch: u64,
    seq: u64,
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.seq)
    }
}

/// A string that is not `epoch-seq` (16 hex digits, a dash, a decimal number).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be a revision as the plot routes hand them out (16 hex digits, '-', a number)")]
pub struct MalformedRevision;

impl std::str::FromStr for Revision {
    type Err = MalformedRevision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, seq) = s.split_once('-').ok_or(MalformedRevision)?;
        if epoch.len() != 16 {
            return Err(MalformedRevision);
        }
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| MalformedRevision)?;
        let seq = seq.parse().map_err(|_| MalformedRevision)?;
        Ok(Self { epoch, seq })
    }
}

/// What changed in an experiment after a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Not known from that revision: read everything.
    All,
    /// These trials (by index, ascending); none when only the experiment record changed, or nothing.
    Trials(Vec<u32>),
}

/// The trials of one watched experiment: each one's last write, from `floor` on.
struct Watched {
    /// Writes up to this seq were not recorded per trial.
    floor: u64,
    trials: HashMap<u32, u64>,
}

#[derive(Default)]
struct State {
    seq: u64,
    latest: HashMap<String, u64>,
    watched: HashMap<String, Watched>,
}

/// The store's revisions (one per store handle, shared by its clones).
pub(super) struct Revisions {
    epoch: u64,
    state: Mutex<State>,
}

impl Default for Revisions {
    fn default() -> Self {
        Self { epoch: rand::random(), state: Mutex::default() }
    }
}

impl Revisions {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a write of `experiment` (of its trial `trial`, when one).
    pub fn wrote(&self, experiment: &str, trial: Option<u32>) {
        let mut state = self.state();
        state.seq += 1;
        let seq = state.seq;
        match state.latest.get_mut(experiment) {
            Some(latest) => *latest = seq,
            None => {
                state.latest.insert(experiment.to_string(), seq);
            }
        }
        if let (Some(index), Some(watched)) = (trial, state.watched.get_mut(experiment)) {
            watched.trials.insert(index, seq);
        }
    }

    /// Marks a delete: a new revision, and the trials' revisions forgotten.
    pub fn deleted(&self, experiment: &str) {
        self.wrote(experiment, None);
        self.state().watched.remove(experiment);
    }

    /// The experiment's revision now (`-0` for one not written since the store was opened).
    pub fn revision(&self, experiment: &str) -> Revision {
        Revision { epoch: self.epoch, seq: self.state().latest.get(experiment).copied().unwrap_or(0) }
    }

    /// The revision now and what changed after `since`; starts keeping the experiment's trials'
    /// revisions when nobody asked before (and answers All to a `since` older than that).
    pub fn changed_since(&self, experiment: &str, since: Revision) -> (Revision, Changed) {
        let mut state = self.state();
        let latest = state.latest.get(experiment).copied().unwrap_or(0);
        let now = Revision { epoch: self.epoch, seq: latest };
        let watched = state
            .watched
            .entry(experiment.to_string())
            .or_insert_with(|| Watched { floor: latest, trials: HashMap::new() });
        if since.epoch != self.epoch || since.seq < watched.floor || since.seq > latest {
            return (now, Changed::All);
        }
        let mut trials: Vec<u32> =
            watched.trials.iter().filter(|&(_, &seq)| seq > since.seq).map(|(&index, _)| index).collect();
        trials.sort_unstable();
        (now, Changed::Trials(trials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_prints_and_parses_back_and_refuses_other_text() {
        let r = Revision { epoch: 0xabc, seq: 42 };
        assert_eq!(r.to_string(), "0000000000000abc-42");
        assert_eq!("0000000000000abc-42".parse(), Ok(r));
        for bad in ["", "42", "abc-42", "0000000000000abc-", "000000000000zabc-1", "0000000000000abc-x"] {
            assert_eq!(bad.parse::<Revision>(), Err(MalformedRevision), "{bad:?}");
        }
    }

    #[test]
    fn since_names_the_trials_written_after_it_and_all_when_it_is_unknown() {
        let revisions = Revisions::default();
        revisions.wrote("e", Some(0));
        let start = revisions.revision("e");
        assert_eq!(revisions.changed_since("e", start), (start, Changed::Trials(vec![])));
        revisions.wrote("e", Some(3));
        revisions.wrote("other", Some(3));
        revisions.wrote("e", Some(1));
        revisions.wrote("e", None);
        let (now, changed) = revisions.changed_since("e", start);
        assert_eq!(changed, Changed::Trials(vec![1, 3]));
        assert_eq!(now, revisions.revision("e"));
        assert_ne!(now, start);
        assert_eq!(revisions.changed_since("e", now).1, Changed::Trials(vec![]));

        let before_watching = Revision { epoch: revisions.epoch, seq: start.seq - 1 };
        assert_eq!(revisions.changed_since("e", before_watching).1, Changed::All, "older than what is kept");
        let other_process = Revision { epoch: revisions.epoch ^ 1, seq: now.seq };
        assert_eq!(revisions.changed_since("e", other_process).1, Changed::All);
        let future = Revision { epoch: revisions.epoch, seq: now.seq + 100 };
        assert_eq!(revisions.changed_since("e", future).1, Changed::All);

        revisions.deleted("e");
        assert_ne!(revisions.revision("e"), now, "a delete is a change");
        assert_eq!(revisions.changed_since("e", now).1, Changed::All, "a reader of the deleted one starts over");
    }
}
