use super::*;
use crate::space::{Assignment, ParamValue};
use crate::trial::TrialPhase;
use jiff::Timestamp;

fn experiment(name: &str) -> ExperimentRecord {
    ExperimentRecord::new(crate::spec::ExperimentSpec::test().metric("acc").maximize().named(name), None)
}

/// Opens a store this process just closed: sled's background flusher may hold the file lock for a
/// moment after the last handle is dropped, so a lock failure is retried briefly.
fn reopen(dir: &std::path::Path) -> Result<Store> {
    for _ in 0..100 {
        match Store::open(dir) {
            Err(Error::Open { .. }) => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other,
        }
    }
    Store::open(dir)
}

fn trial(experiment: &str, index: u32) -> Trial {
    let mut parameters = Assignment::new();
    parameters.insert("x".into(), ParamValue::Float(index as f64 / 10.0));
    Trial::new(experiment, index, parameters, Timestamp::UNIX_EPOCH)
}

#[test]
fn records_survive_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_experiment(&experiment("a")).unwrap();
        let mut t = trial("a", 0);
        t.phase = TrialPhase::Succeeded;
        store.put_trial(&t).unwrap();
        let obs =
            Observation { attempt: 1, metric: "acc".into(), value: 0.5, step: Some(1), time: Timestamp::UNIX_EPOCH };
        store.add_observations("a", 0, &[obs.clone(), obs]).unwrap();
        store.put_trial(&t).unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.experiment("a").unwrap().unwrap().experiment.spec, experiment("a").experiment.spec);
    assert_eq!(store.trials("a").unwrap()[0].phase, TrialPhase::Succeeded);
    assert_eq!(store.observations("a", 0).unwrap().len(), 2);
}

#[test]
fn trials_list_in_index_order_and_stay_within_their_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in [300, 2, 1] {
        store.put_trial(&trial("ab", i)).unwrap();
    }
    store.put_trial(&trial("a", 5)).unwrap();
    let indices: Vec<u32> = store.trials("ab").unwrap().iter().map(|t| t.index).collect();
    assert_eq!(indices, [1, 2, 300]);
    assert_eq!(store.trials("a").unwrap().len(), 1);
    store.delete_experiment("ab").unwrap();
    assert!(store.trials("ab").unwrap().is_empty());
    assert_eq!(store.trials("a").unwrap().len(), 1);
}

#[test]
fn a_store_with_a_foreign_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.meta_for_test().insert("schema", "99").unwrap();
    store.flush_writes().unwrap(); // flushes the whole database, meta included
    drop(store);
    let err = reopen(dir.path()).err().unwrap();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn the_data_dir_and_the_database_are_private_to_their_user_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(&data).unwrap();
    store.put_experiment(&experiment("secret")).unwrap();
    drop(store);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("db")), 0o700);
    let files: Vec<_> = std::fs::read_dir(data.join("db")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.ends_with("db")), "{files:?}");
    for file in files.iter().filter(|f| f.is_file()) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

#[test]
fn a_trial_keeps_at_most_its_share_of_observations_counted_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let one = |i: usize| crate::trial::Observation {
        attempt: 1,
        metric: "m".into(),
        value: i as f64,
        step: Some(i as i64),
        time: jiff::Timestamp::UNIX_EPOCH,
    };
    let batch: Vec<_> = (0..MAX_OBSERVATIONS - 10).map(one).collect();
    assert_eq!(store.add_observations("e", 0, &batch).unwrap(), batch.len());
    store.flush_writes().unwrap();
    drop(store);
    let store = reopen(dir.path()).unwrap();
    let more: Vec<_> = (0..25).map(one).collect();
    assert_eq!(store.add_observations("e", 0, &more).unwrap(), 10, "the count survives a restart");
    assert_eq!(store.add_observations("e", 0, &more).unwrap(), 0);
    assert_eq!(store.observations("e", 0).unwrap().len(), MAX_OBSERVATIONS);
    assert_eq!(store.add_observations("e", 1, &more).unwrap(), 25, "another trial has its own share");
}

#[test]
fn trials_and_observations_come_in_pages_that_cover_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..25 {
        store.write_trial(&Trial::new("e", i, crate::space::Assignment::new(), jiff::Timestamp::UNIX_EPOCH)).unwrap();
        store.write_trial(&Trial::new("e2", i, crate::space::Assignment::new(), jiff::Timestamp::UNIX_EPOCH)).unwrap();
    }
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let (page, next) = store.trials_page("e", after, 10).unwrap();
        seen.extend(page.iter().map(|t| (t.experiment.clone(), t.index)));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).map(|i| ("e".to_string(), i)).collect::<Vec<_>>(), "no other experiment's trials");
    let obs: Vec<_> = (0..7)
        .map(|i| crate::trial::Observation {
            attempt: 1,
            metric: "m".into(),
            value: f64::from(i),
            step: None,
            time: jiff::Timestamp::UNIX_EPOCH,
        })
        .collect();
    store.add_observations("e", 3, &obs).unwrap();
    store.add_observations("e", 4, &obs).unwrap();
    let (first, next) = store.observations_page("e", 3, None, 5).unwrap();
    let (rest, end) = store.observations_page("e", 3, next, 5).unwrap();
    assert_eq!(first.len() + rest.len(), 7);
    assert_eq!(end, None);
    assert_eq!(rest.last().unwrap().value, 6.0);
}

#[test]
fn the_ranking_kept_on_write_gives_the_leaderboards_first_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let record = experiment("r");
    store.put_experiment(&record).unwrap();
    let write = |index: u32, phase: TrialPhase, objective: Option<f64>| {
        let mut t = trial("r", index);
        t.phase = phase;
        t.objective = objective;
        store.put_trial(&t).unwrap();
    };
    let top = |store: &Store, n: usize| -> Option<Vec<u32>> {
        store.ranked("r", Goal::Maximize, n).unwrap().map(|ts| ts.iter().map(|t| t.index).collect())
    };
    let board = |store: &Store, n: usize| -> Vec<u32> {
        let trials = store.trials("r").unwrap();
        let rows = crate::leaderboard::rank(&record.experiment, &trials, Some(n), Timestamp::UNIX_EPOCH).trials;
        rows.iter().filter(|r| r.rank.is_some()).map(|r| r.name.rsplit('-').next().unwrap().parse().unwrap()).collect()
    };
    write(0, TrialPhase::Succeeded, Some(0.5));
    write(1, TrialPhase::Failed, Some(0.99));
    write(2, TrialPhase::Succeeded, Some(0.7));
    write(3, TrialPhase::Running, None);
    assert_eq!(top(&store, 2), Some(vec![2, 0]), "built from the disk on first use");
    // Written after the ranking was built: a better trial, a tie (the earlier index first), a
    // trial told through compare-and-swap, and one that left the succeeded group.
    write(4, TrialPhase::Succeeded, Some(0.9));
    write(5, TrialPhase::Succeeded, Some(0.7));
    store
        .change_trial("r", 3, |t| {
            t.phase = TrialPhase::Succeeded;
            t.objective = Some(0.95);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap()
        .unwrap();
    write(4, TrialPhase::Stopped, Some(0.9));
    for n in 1..=4 {
        assert_eq!(top(&store, n), Some(board(&store, n)), "top {n}");
    }
    assert_eq!(top(&store, 4), Some(vec![3, 2, 5, 0]));
    assert_eq!(top(&store, 10).map(|t| t.len()), Some(4), "only succeeded trials are ranked");
    drop(store);
    let store = reopen(dir.path()).unwrap();
    assert_eq!(top(&store, 3), Some(board(&store, 3)), "rebuilt after a reopen");
    store.delete_experiment("r").unwrap();
    assert_eq!(top(&store, 3), Some(vec![]), "a deleted experiment's ranking is gone");
}
