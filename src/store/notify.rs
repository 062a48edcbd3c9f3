//! Change notices that never hold up a writer. A write marks the experiment's name in every
//! subscriber's set and wakes it; a subscriber takes the whole set when it looks. However slow a
//! reader is, a writer only inserts a name into a set (at most one entry per experiment, so the
//! set stays bounded by the number of experiments) — unlike sled's subscriptions, whose bounded
//! queues made writers wait for readers that the waiting writers themselves kept from running.
//!
//! ```text
//! write(name) ──▶ for each live subscriber: dirty.insert(name); notify ──▶ Changes::next() → {names}
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// What one subscriber has not looked at yet: experiment names, or one experiment's trial indexes.
struct Subscriber<K> {
    dirty: Mutex<BTreeSet<K>>,
    wake: Notify,
}

impl<K: Ord + Clone> Subscriber<K> {
    fn new() -> Self {
        Self { dirty: Mutex::new(BTreeSet::new()), wake: Notify::new() }
    }

    fn mark(&self, key: &K) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        if !dirty.contains(key) {
            dirty.insert(key.clone());
        }
        drop(dirty);
        self.wake.notify_one();
    }
}

/// A subscription: what changed since it last looked (experiment names, or trial indexes).
pub struct Changes<K = String> {
    subscriber: Arc<Subscriber<K>>,
}

impl<K: Ord + Clone> Changes<K> {
    /// What changed since the last look, waiting until there is something.
    pub async fn next(&self) -> BTreeSet<K> {
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            self.subscriber.wake.notified().await;
        }
    }

    /// What changed since the last look, without waiting (empty when nothing did).
    pub fn take(&self) -> BTreeSet<K> {
        std::mem::take(&mut *self.subscriber.dirty.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The store's subscribers: to every experiment record, and to one experiment's trials.
#[derive(Default)]
pub(super) struct Notices {
    experiments: Mutex<Vec<Weak<Subscriber<String>>>>,
    trials: Mutex<HashMap<String, Vec<Weak<Subscriber<u32>>>>>,
}

impl Notices {
    pub fn experiments(&self) -> Changes {
        let subscriber = Arc::new(Subscriber::new());
        self.experiments.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&subscriber));
        Changes { subscriber }
    }

    pub fn trials(&self, experiment: &str) -> Changes<u32> {
        let subscriber = Arc::new(Subscriber::new());
        let mut trials = self.trials.lock().unwrap_or_else(|e| e.into_inner());
        trials.entry(experiment.to_string()).or_default().push(Arc::downgrade(&subscriber));
        Changes { subscriber }
    }

    pub fn experiment_changed(&self, name: &str) {
        let mut subscribers = self.experiments.lock().unwrap_or_else(|e| e.into_inner());
        mark_live(&mut subscribers, &name.to_string());
    }

    pub fn trial_changed(&self, experiment: &str, index: u32) {
        let mut trials = self.trials.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = trials.get_mut(experiment) {
            mark_live(subscribers, &index);
            if subscribers.is_empty() {
                trials.remove(experiment);
            }
        }
    }
}

/// Marks `key` for every subscriber still alive, forgetting the dropped ones.
fn mark_live<K: Ord + Clone>(subscribers: &mut Vec<Weak<Subscriber<K>>>, key: &K) {
    subscribers.retain(|weak| match weak.upgrade() {
        Some(subscriber) => {
            subscriber.mark(key);
            true
        }
        None => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_never_looks_holds_up_no_writer_and_sees_each_name_once() {
        let notices = Notices::default();
        let idle = notices.experiments();
        let watcher = notices.experiments();
        let started = std::time::Instant::now();
        for i in 0..100_000 {
            notices.experiment_changed(&format!("e{}", i % 10_000));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "never blocked");
        let seen = watcher.next().await;
        assert_eq!(seen.len(), 10_000, "one entry per experiment, however many writes");
        assert!(watcher.take().is_empty());
        notices.experiment_changed("e1");
        assert_eq!(watcher.next().await, BTreeSet::from(["e1".to_string()]));
        assert_eq!(idle.take().len(), 10_000, "a slow reader still gets everything, coalesced");
    }

    #[tokio::test]
    async fn trial_notices_reach_only_that_experiments_subscribers_and_dropped_ones_are_forgotten() {
        let notices = Notices::default();
        let a = notices.trials("a");
        let b = notices.trials("b");
        notices.trial_changed("a", 3);
        notices.trial_changed("a", 3);
        notices.trial_changed("a", 4);
        assert_eq!(a.take(), BTreeSet::from([3, 4]));
        assert!(b.take().is_empty());
        drop(b);
        notices.trial_changed("b", 0);
        assert!(notices.trials.lock().unwrap().get("b").is_none());
    }

    #[tokio::test]
    async fn next_waits_for_a_write_made_after_it_started_waiting() {
        let notices = Arc::new(Notices::default());
        let changes = notices.experiments();
        let writer = Arc::clone(&notices);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            writer.experiment_changed("late");
        });
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), changes.next()).await.unwrap();
        assert_eq!(seen, BTreeSet::from(["late".to_string()]));
    }
}
