//! The loop's shell with a scripted executor: real store on disk, real tasks, no processes. What is
//! checked is that the core's commands are carried out (saved, launched, stopped, ended) and the
//! executor's reports reach the core in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::*;
use crate::executor::{Exit, Finished, Launch, StopSignal, Stream};
use crate::spec::{EndReason, ExperimentPhase, ExperimentSpec};
use crate::trial::{TrialPhase, TrialReason};

/// What one attempt does: print these lines, then end so (or run until stopped).
#[derive(Clone)]
struct Act {
    lines: Vec<&'static str>,
    end: Option<Finished>,
}

fn ends(exit: Exit, lines: &[&'static str]) -> Act {
    Act { lines: lines.to_vec(), end: Some(Finished { exit, stderr_tail: vec!["boom".into()] }) }
}

fn runs_until_stopped() -> Act {
    Act { lines: vec!["loss=0.9"], end: None }
}

/// An executor that plays `script(trial index, attempt)` for each launch.
struct Scripted {
    script: Box<dyn Fn(u32, u32) -> Act + Send + Sync>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Executor for Scripted {
    async fn run(&self, launch: Launch, events: mpsc::UnboundedSender<TrialEvent>, mut stop: StopSignal) -> Finished {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(launch.trial.clone()).or_default();
            *n += 1;
            *n
        };
        let index: u32 = launch.trial.rsplit('-').next().unwrap().parse().unwrap();
        let act = (self.script)(index, attempt);
        events.send(TrialEvent::Started { pid: 1000 + index, pid_stamp: None, gpus: vec![] }).unwrap();
        for line in act.lines {
            events.send(TrialEvent::Line { stream: Stream::Stdout, text: line.into() }).unwrap();
        }
        match act.end {
            Some(finished) => finished,
            None => {
                let _ = stop.wait_for(Option::is_some).await;
                Finished { exit: Exit::Stopped, stderr_tail: vec![] }
            }
        }
    }

    fn reap(&self, _pid: u32, _pid_stamp: Option<&str>) {}

    fn gpu_capacity(&self) -> Option<usize> {
        None
    }
}

fn controller(dir: &std::path::Path, script: impl Fn(u32, u32) -> Act + Send + Sync + 'static) -> Controller<Scripted> {
    let store = Store::open(&dir.join("db")).unwrap();
    let executor = Scripted { script: Box::new(script), attempts: Mutex::default() };
    Controller::new(store, Arc::new(executor), dir.to_path_buf())
}

/// Runs `spec` to its end (at most 20 s); `on_launch` may halt it. Returns the record and the
/// progress seen: `launched`/`ended` trial names in order.
async fn run(
    controller: &Controller<Scripted>,
    spec: ExperimentSpec,
    on_launch: impl Fn(&watch::Sender<Halt>, usize) + Send + Sync,
) -> (ExperimentRecord, Vec<String>) {
    controller.admit(spec.named("e"), None, false).unwrap();
    let (halt, halts) = watch::channel(Halt::Run);
    let mut seen = Vec::new();
    let mut launches = 0;
    let mut progress = |p: Progress<'_>| match p {
        Progress::Launched { trial, .. } => {
            launches += 1;
            seen.push(format!("launched {}", trial.name));
            on_launch(&halt, launches);
        }
        Progress::Ended { trial, .. } => seen.push(format!("ended {} {:?}", trial.name, trial.phase)),
        Progress::Observed { .. } => {}
    };
    let record = tokio::time::timeout(Duration::from_secs(20), controller.run("e", halts, &mut progress))
        .await
        .expect("the loop ends")
        .unwrap();
    (record, seen)
}

fn status(record: &ExperimentRecord) -> (ExperimentPhase, Option<EndReason>) {
    let s = record.experiment.status.as_ref().unwrap();
    (s.phase, s.reason.clone())
}

#[tokio::test]
async fn the_loop_carries_out_every_verdict_and_keeps_each_attempts_metrics_apart() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), |trial, attempt| match (trial, attempt) {
        (0, _) => ends(Exit::Code(0), &["loss=0.5"]),
        (1, 1) => ends(Exit::Signal(9), &["loss=7"]),
        (1, _) => ends(Exit::Code(0), &["epoch=1 loss=0.4", "epoch=2 loss=0.3"]),
        (2, _) => ends(Exit::Code(3), &[]),
        _ => ends(Exit::Code(0), &["Loss=1"]),
    });
    let spec = ExperimentSpec::test().budget(4).parallel(2).retries(1);
    let (record, seen) = run(&controller, spec, |_, _| {}).await;
    assert_eq!(status(&record), (ExperimentPhase::Succeeded, Some(EndReason::MaxTrialsReached)));
    assert_eq!(seen.iter().filter(|s| s.starts_with("launched")).count(), 4, "a retry is no new launch: {seen:?}");
    let trials = controller.store.trials("e").unwrap();
    let summary: Vec<_> = trials.iter().map(|t| (t.phase, t.reason.clone(), t.attempts, t.objective)).collect();
    assert_eq!(
        summary,
        [
            (TrialPhase::Succeeded, None, 1, Some(0.5)),
            (TrialPhase::Succeeded, None, 2, Some(0.3)),
            (TrialPhase::Failed, Some(TrialReason::NonZeroExit), 1, None),
            (TrialPhase::Failed, Some(TrialReason::MetricsUnavailable), 1, None),
        ]
    );
    assert_eq!(trials[1].objective_step, Some(2), "the retried attempt's own metrics, not the lost one's 7");
    assert_eq!(trials[2].message.as_deref(), Some("exit code 3; stderr ends with:\nboom"));
    assert!(trials[3].message.as_deref().unwrap().contains("(it reported Loss)"));
    assert!(trials.iter().all(|t| t.pid.is_none() && t.finished_at.is_some() && t.dir.is_some()));
    let lost = controller.store.observations("e", 1).unwrap();
    assert_eq!(lost.iter().map(|o| o.attempt).collect::<Vec<_>>(), [1, 2, 2], "every attempt's output is kept");
    let counts = &record.experiment.status.as_ref().unwrap().trials;
    assert_eq!((counts.succeeded, counts.failed, counts.running), (2, 2, 0));
}

#[tokio::test]
async fn a_stop_ends_the_running_trials_and_the_experiment_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), |_, _| runs_until_stopped());
    let spec = ExperimentSpec::test().budget(5).parallel(2);
    let (record, _) = run(&controller, spec, |halt, launched| {
        if launched == 2 {
            halt.send_replace(Halt::Stop);
        }
    })
    .await;
    assert_eq!(status(&record), (ExperimentPhase::Stopped, Some(EndReason::StoppedByUser)));
    let trials = controller.store.trials("e").unwrap();
    assert_eq!(trials.len(), 2, "nothing launched after the stop");
    for t in &trials {
        assert_eq!(
            (t.phase, t.reason.clone(), t.objective),
            (TrialPhase::Stopped, Some(TrialReason::StoppedByUser), Some(0.9))
        );
    }
}

#[tokio::test]
async fn a_shutdown_interrupts_the_running_trials_and_leaves_the_experiment_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), |_, _| runs_until_stopped());
    let (record, _) = run(&controller, ExperimentSpec::test().budget(3), |halt, _| {
        halt.send_replace(Halt::Interrupt);
    })
    .await;
    assert_eq!(status(&record), (ExperimentPhase::Running, Some(EndReason::ControllerShutdown)));
    let trial = &controller.store.trials("e").unwrap()[0];
    assert_eq!((trial.phase, trial.reason.clone()), (TrialPhase::Interrupted, Some(TrialReason::ControllerShutdown)));
    assert_eq!(controller.requeue("e").unwrap(), 1, "re-queued when the controller is back");
}

#[tokio::test]
async fn an_experiment_whose_trials_all_fail_is_failed_with_their_causes() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), |_, _| ends(Exit::Code(2), &[]));
    let (record, seen) = run(&controller, ExperimentSpec::test().budget(3).max_failed(3), |_, _| {}).await;
    assert_eq!(status(&record), (ExperimentPhase::Failed, Some(EndReason::NoTrialSucceeded)));
    let message = record.experiment.status.unwrap().message.unwrap();
    assert!(message.contains("e-0002 (NonZeroExit: exit code 2: boom)"), "{message}");
    assert_eq!(seen.last().map(String::as_str), Some("ended e-0002 Failed"));
}
