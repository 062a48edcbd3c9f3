//! The leaderboard's order, kept on write: per experiment, its succeeded trials ordered by objective
//! value (then index), so `leaderboard?top=N` reads N trials instead of decoding and ranking all.
//!
//! An experiment's ranking is built from the disk the first time it is asked for (one scan), then
//! every trial write updates it. It lives in memory only: it is derived from the trials, which stay
//! the truth (a reader checks each ranked trial against its record, see `Store::ranked`).
//!
//! ```text
//! write_trial / change_trial ──▶ sled ──▶ note(index, objective) ──▶ ranking (if built)
//! ranked(top N) ──▶ ranking (built on first use: one scan) ──▶ N trial reads
//! ```
//! A writer notes after its write reached sled, and a ranking is built under its experiment's lock,
//! which notes wait for: a write is either seen by the build's scan or noted after it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::spec::Goal;

/// A value's place in `f64::total_cmp`'s order, as an unsigned integer.
pub fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// One experiment's succeeded trials by objective.
#[derive(Default)]
pub struct Ranking {
    value_of: HashMap<u32, u64>,
    order: BTreeSet<(u64, u32)>,
}

impl Ranking {
    /// Records trial `index`'s ranked value: `Some` for a succeeded trial with an objective.
    pub fn set(&mut self, index: u32, objective: Option<f64>) {
        if let Some(old) = self.value_of.remove(&index) {
            self.order.remove(&(old, index));
        }
        if let Some(value) = objective {
            let key = order_key(value);
            self.value_of.insert(index, key);
            self.order.insert((key, index));
        }
    }

    /// The first `n` trials (index, order key), best first: by value in the goal's direction, ties
    /// by index (the leaderboard's order).
    pub fn top(&self, goal: Goal, n: usize) -> Vec<(u32, u64)> {
        if goal == Goal::Minimize {
            return self.order.iter().take(n).map(|&(key, index)| (index, key)).collect();
        }
        // Descending values, but ascending indexes within one value: take whole groups of equal
        // values from the top, each in index order.
        let mut top = Vec::with_capacity(n.min(self.order.len()));
        let mut group = Vec::new();
        let mut group_key = None;
        for &(key, index) in self.order.iter().rev() {
            if group_key != Some(key) {
                top.extend(group.drain(..).rev());
                if top.len() >= n {
                    break;
                }
                group_key = Some(key);
            }
            group.push((index, key));
        }
        top.extend(group.drain(..).rev());
        top.truncate(n);
        top
    }
}

/// Every experiment's ranking that has been asked for.
#[derive(Default)]
pub struct Ranks {
    slots: Mutex<HashMap<String, Arc<Mutex<Option<Ranking>>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ranks {
    /// Reads an experiment's ranking, building it with `build` the first time.
    pub fn with<R, E>(
        &self,
        experiment: &str,
        build: impl FnOnce() -> Result<Ranking, E>,
        read: impl FnOnce(&mut Ranking) -> R,
    ) -> Result<R, E> {
        let slot = lock(&self.slots).entry(experiment.to_string()).or_default().clone();
        let mut guard = lock(&slot);
        let ranking = match &mut *guard {
            Some(ranking) => ranking,
            None => guard.insert(build()?),
        };
        Ok(read(ranking))
    }

    /// A trial was written: its ranked value now is `objective` (`None`: not ranked).
    pub fn note(&self, experiment: &str, index: u32, objective: Option<f64>) {
        let slot = lock(&self.slots).get(experiment).cloned();
        if let Some(slot) = slot
            && let Some(ranking) = lock(&slot).as_mut()
        {
            ranking.set(index, objective);
        }
    }

    /// An experiment was deleted.
    pub fn forget(&self, experiment: &str) {
        lock(&self.slots).remove(experiment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_key_sorts_as_total_cmp() {
        let values = [f64::NEG_INFINITY, -1e300, -2.5, -1e-9, -0.0, 0.0, 3.6e-9, 1.0, 1e300, f64::INFINITY];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) < order_key(pair[1]), "{} before {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn top_follows_the_goal_with_ties_in_trial_order() {
        let mut r = Ranking::default();
        for (index, value) in [(0, 2.0), (1, 1.0), (2, 3.0), (3, 1.0), (4, 3.0), (5, 0.5)] {
            r.set(index, Some(value));
        }
        let top = |r: &Ranking, goal, n| r.top(goal, n).into_iter().map(|(index, _)| index).collect::<Vec<_>>();
        assert_eq!(top(&r, Goal::Minimize, 3), vec![5, 1, 3]);
        assert_eq!(top(&r, Goal::Maximize, 3), vec![2, 4, 0]);
        assert_eq!(top(&r, Goal::Maximize, 1), vec![2]);
        assert_eq!(top(&r, Goal::Maximize, 10), vec![2, 4, 0, 1, 3, 5]);
        assert_eq!(r.top(Goal::Minimize, 1), vec![(5, order_key(0.5))]);
        // A trial re-written moves; one no longer succeeded leaves the ranking.
        r.set(5, Some(9.0));
        r.set(2, None);
        assert_eq!(top(&r, Goal::Maximize, 2), vec![5, 4]);
        assert_eq!(top(&r, Goal::Minimize, 9), vec![1, 3, 0, 4, 5]);
    }
}
