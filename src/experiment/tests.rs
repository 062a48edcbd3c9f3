//! The core fed events and checked by the commands it returns: no processes, no store, no clock.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::*;
use crate::search;
use crate::spec::{AlgorithmName, ExperimentPhase};

const NOW: Timestamp = Timestamp::UNIX_EPOCH;

fn exit(code: i32) -> Finished {
    Finished { exit: Exit::Code(code), stderr_tail: Vec::new() }
}

fn reporting(metric: &str, values: &[f64]) -> Tally {
    let mut tally = Tally::default();
    for (step, v) in values.iter().enumerate() {
        tally.add_at(metric, *v, Some(step as i64 + 1));
    }
    tally
}

/// A scripted executor: every launched attempt starts, then ends as `script` says for its trial
/// and attempt. Runs the core until it finishes; returns every command it gave and the end.
struct Run {
    core: Core,
    commands: Vec<Command>,
    end: Option<EndReason>,
}

fn run(spec: ExperimentSpec, script: impl Fn(&Trial) -> (Finished, Tally)) -> Run {
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    let mut all = Vec::new();
    let mut launched: VecDeque<Trial> = VecDeque::new();
    for _ in 0..1000 {
        let mut commands = core.step(search.as_mut(), NOW).unwrap();
        while commands.is_empty() {
            let Some(trial) = launched.pop_front() else { break };
            let (finished, tally) = script(&trial);
            let i = trial.index;
            commands.extend(core.handle(Event::Started { trial: i, pid: 100 + i, pid_stamp: None, gpus: vec![] }, NOW));
            commands.extend(core.handle(Event::AttemptEnded { trial: i, finished, tally }, NOW));
        }
        if commands.is_empty() {
            break;
        }
        for c in &commands {
            match c {
                Command::Launch(t) | Command::Retry(t) => launched.push_back(t.clone()),
                Command::Finish(reason) => {
                    all.extend(commands.clone());
                    return Run { core, commands: all, end: Some(reason.clone()) };
                }
                _ => {}
            }
        }
        all.extend(commands);
    }
    Run { core, commands: all, end: None }
}

fn ended(run: &Run) -> Vec<&Trial> {
    run.commands.iter().filter_map(|c| if let Command::Ended(t) = c { Some(t) } else { None }).collect()
}

#[test]
fn a_budget_spent_with_a_success_ends_max_trials_reached() {
    let run = run(ExperimentSpec::test().budget(4), |_| (exit(0), reporting("loss", &[0.5])));
    assert_eq!(run.end, Some(EndReason::MaxTrialsReached));
    assert_eq!(ended(&run).len(), 4);
    assert!(ended(&run).iter().all(|t| t.phase == TrialPhase::Succeeded && t.reason.is_none()));
}

#[test]
fn an_experiment_whose_every_trial_failed_ends_no_trial_succeeded_even_within_max_failed() {
    let failing = |_: &Trial| (exit(3), Tally::default());
    let run = run(ExperimentSpec::test().budget(3).max_failed(3), failing);
    assert_eq!(run.end, Some(EndReason::NoTrialSucceeded));
    assert_eq!(EndReason::NoTrialSucceeded.phase(), ExperimentPhase::Failed);
    let mut status = ExperimentStatus::default();
    begin(&mut status, NOW);
    run.core.finish(&mut status, EndReason::NoTrialSucceeded, NOW);
    assert_eq!(status.phase, ExperimentPhase::Failed);
    let message = status.message.unwrap();
    assert!(
        message.contains("no trial succeeded") && message.contains("e-0002 (NonZeroExit: exit code 3)"),
        "{message}"
    );
}

#[test]
fn more_failures_than_allowed_end_too_many_failures_and_stop_the_running_trials() {
    let spec = ExperimentSpec::test().budget(10).parallel(3).max_failed(1);
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    let launched = core.step(search.as_mut(), NOW).unwrap();
    assert_eq!(launched.iter().filter(|c| matches!(c, Command::Launch(_))).count(), 3);
    for i in 0..2 {
        core.handle(Event::AttemptEnded { trial: i, finished: exit(1), tally: Tally::default() }, NOW);
    }
    let commands = core.step(search.as_mut(), NOW).unwrap();
    assert_eq!(commands, vec![Command::Stop { trial: 2, cause: TrialReason::TooManyFailures }]);
    assert!(core.step(search.as_mut(), NOW).unwrap().is_empty(), "waits for the stopped trial");
    let stopped = Finished { exit: Exit::Stopped, stderr_tail: vec![] };
    let back = core.handle(Event::AttemptEnded { trial: 2, finished: stopped, tally: Tally::default() }, NOW);
    let Command::Ended(t) = &back[1] else { panic!("{back:?}") };
    assert_eq!((t.phase, t.reason.clone()), (TrialPhase::Stopped, Some(TrialReason::TooManyFailures)));
    assert_eq!(core.step(search.as_mut(), NOW).unwrap(), vec![Command::Finish(EndReason::TooManyFailures)]);
    assert!(core.step(search.as_mut(), NOW).unwrap().is_empty(), "the end is given once");
}

#[test]
fn reaching_the_target_ends_goal_reached_and_stops_the_others_with_their_own_reason() {
    let spec = ExperimentSpec::test().budget(10).parallel(2).target(0.1);
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    core.step(search.as_mut(), NOW).unwrap();
    core.handle(Event::AttemptEnded { trial: 0, finished: exit(0), tally: reporting("loss", &[0.05]) }, NOW);
    let commands = core.step(search.as_mut(), NOW).unwrap();
    assert_eq!(commands, vec![Command::Stop { trial: 1, cause: TrialReason::ExperimentGoalReached }]);
    // A trial that ends well while being stopped keeps its success, and the end stays the goal.
    core.handle(Event::AttemptEnded { trial: 1, finished: exit(0), tally: reporting("loss", &[0.5]) }, NOW);
    assert_eq!(core.trial(1).unwrap().phase, TrialPhase::Succeeded);
    assert_eq!(core.trial(1).unwrap().reason, None);
    assert_eq!(core.step(search.as_mut(), NOW).unwrap(), vec![Command::Finish(EndReason::GoalReached)]);
}

#[test]
fn a_grid_that_runs_dry_ends_grid_exhausted_and_a_finite_random_space_search_space_exhausted() {
    let run1 = run(ExperimentSpec::test().grid(3).budget(10), |_| (exit(0), reporting("loss", &[1.0])));
    assert_eq!(run1.end, Some(EndReason::GridExhausted));
    assert_eq!(ended(&run1).len(), 3);
    let random = ExperimentSpec::test().grid(2).budget(10);
    let random = ExperimentSpec {
        algorithm: crate::spec::Algorithm { name: AlgorithmName::Random, ..random.algorithm },
        ..random
    };
    let run2 = run(random, |_| (exit(0), reporting("loss", &[1.0])));
    assert_eq!(run2.end, Some(EndReason::SearchSpaceExhausted));
    let run3 = run(ExperimentSpec::test().grid(2).budget(10), |_| (exit(2), Tally::default()));
    assert_eq!(run3.end, Some(EndReason::NoTrialSucceeded), "an exhausted space with no success failed");
}

#[test]
fn nothing_running_and_nothing_startable_is_reported_stalled() {
    let c = Counts { created: 2, succeeded: 1, ..Default::default() };
    let l = Limits { max_trials: 5, parallel_trials: 0, max_failed_trials: 3 };
    let step = next_step(c, l, Halt::Run, &EndReason::SearchSpaceExhausted);
    assert_eq!(step, Step::Finish { reason: EndReason::Stalled, stop_running: false });
}

#[test]
fn launches_fill_the_parallel_slots_queued_trials_first_and_never_pass_max_trials() {
    let spec = ExperimentSpec::test().budget(3).parallel(2);
    let mut queued = Trial::new("e", 0, crate::space::Assignment::new(), NOW);
    queued.attempts = 1;
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, vec![queued]);
    let commands = core.step(search.as_mut(), NOW).unwrap();
    let kinds: Vec<String> = commands
        .iter()
        .map(|c| match c {
            Command::Save(t) => format!("save {}", t.index),
            Command::Launch(t) => format!("launch {} attempt {}", t.index, t.attempts),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["save 1", "launch 0 attempt 2", "launch 1 attempt 1"]);
    assert!(core.step(search.as_mut(), NOW).unwrap().is_empty(), "both slots are taken");
    core.handle(Event::AttemptEnded { trial: 0, finished: exit(0), tally: reporting("loss", &[1.0]) }, NOW);
    let next = core.step(search.as_mut(), NOW).unwrap();
    assert!(matches!(&next[..], [Command::Save(t), Command::Launch(_)] if t.index == 2));
    core.handle(Event::AttemptEnded { trial: 1, finished: exit(0), tally: reporting("loss", &[1.0]) }, NOW);
    assert!(core.step(search.as_mut(), NOW).unwrap().is_empty(), "3 created: the budget allows no fourth");
    assert_eq!(core.counts().created, 3);
}

#[test]
fn attempt_verdicts_for_each_exit_and_tally() {
    let spec = ExperimentSpec::test().retries(1).timeout("5s");
    let with = |exit: Exit, tail: &[&str]| Finished { exit, stderr_tail: tail.iter().map(|s| s.to_string()).collect() };
    let loss = reporting("loss", &[0.3]);
    let other = reporting("Loss", &[0.3]);
    let none = Tally::default();
    let user = TrialReason::StoppedByUser;
    let shutdown = TrialReason::ControllerShutdown;
    type Case<'a> = (Finished, &'a Tally, u32, Option<&'a TrialReason>, TrialPhase, Option<TrialReason>, &'a str, bool);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (with(Exit::Code(0), &[]), &loss, 1, None, TrialPhase::Succeeded, None, "", false),
        (with(Exit::Code(0), &[]), &other, 1, None, TrialPhase::Failed, Some(TrialReason::MetricsUnavailable), "exited 0 but never reported loss (it reported Loss)", false),
        (with(Exit::Code(0), &[]), &none, 1, None, TrialPhase::Failed, Some(TrialReason::MetricsUnavailable), "exited 0 but never reported loss (it reported no metrics at all)", false),
        (with(Exit::Code(2), &["usage: train.py", "error: bad --lr"]), &loss, 1, None, TrialPhase::Failed, Some(TrialReason::NonZeroExit), "exit code 2; stderr ends with:\nusage: train.py\nerror: bad --lr", false),
        (with(Exit::Signal(9), &[]), &none, 1, None, TrialPhase::Failed, Some(TrialReason::Killed), "killed by signal 9", true),
        (with(Exit::Signal(9), &[]), &none, 2, None, TrialPhase::Failed, Some(TrialReason::Killed), "killed by signal 9", false),
        (with(Exit::TimedOut, &[]), &loss, 1, None, TrialPhase::Failed, Some(TrialReason::TimedOut), "ran longer than spec.trial.timeout (5s)", false),
        (with(Exit::StartFailed("no such program".into()), &[]), &none, 1, None, TrialPhase::Failed, Some(TrialReason::StartFailed), "no such program", false),
        (with(Exit::Stopped, &[]), &loss, 1, Some(&user), TrialPhase::Stopped, Some(user.clone()), "", false),
        (with(Exit::Stopped, &[]), &loss, 1, Some(&shutdown), TrialPhase::Interrupted, Some(shutdown.clone()), "", false),
        (with(Exit::Code(1), &[]), &none, 1, Some(&user), TrialPhase::Failed, Some(TrialReason::NonZeroExit), "exit code 1", false),
    ];
    for (finished, tally, attempts, stop, phase, reason, message, retry) in cases {
        let v = judge(&spec, &finished, tally, attempts, stop, None);
        assert_eq!((v.phase, v.reason, v.message.as_str(), v.retry), (phase, reason, message, retry), "{finished:?}");
    }
}

#[test]
fn a_trial_killed_from_outside_is_retried_as_a_new_attempt_while_retries_remain() {
    let run = run(ExperimentSpec::test().budget(1).retries(1), |t| {
        if t.attempts == 1 {
            (Finished { exit: Exit::Signal(9), stderr_tail: vec![] }, Tally::default())
        } else {
            (exit(0), reporting("loss", &[0.2]))
        }
    });
    let retries: Vec<u32> =
        run.commands.iter().filter_map(|c| if let Command::Retry(t) = c { Some(t.attempts) } else { None }).collect();
    assert_eq!(retries, [2]);
    assert_eq!(ended(&run)[0].phase, TrialPhase::Succeeded);
    assert_eq!(ended(&run)[0].attempts, 2);
    assert_eq!(run.end, Some(EndReason::MaxTrialsReached));
}

#[test]
fn a_user_stop_stops_every_running_trial_and_ends_stopped_while_a_shutdown_interrupts_them() {
    for (halt, cause, phase, end) in [
        (Halt::Stop, TrialReason::StoppedByUser, TrialPhase::Stopped, EndReason::StoppedByUser),
        (Halt::Interrupt, TrialReason::ControllerShutdown, TrialPhase::Interrupted, EndReason::ControllerShutdown),
    ] {
        let spec = ExperimentSpec::test().parallel(2);
        let mut search = search::build(&spec, 1).unwrap();
        let mut core = Core::new("e", spec, Vec::new());
        core.step(search.as_mut(), NOW).unwrap();
        core.handle(Event::Halt(halt), NOW);
        let stops = core.step(search.as_mut(), NOW).unwrap();
        assert_eq!(
            stops,
            vec![Command::Stop { trial: 0, cause: cause.clone() }, Command::Stop { trial: 1, cause: cause.clone() }]
        );
        for i in 0..2 {
            let stopped = Finished { exit: Exit::Stopped, stderr_tail: vec![] };
            core.handle(Event::AttemptEnded { trial: i, finished: stopped, tally: Tally::default() }, NOW);
            assert_eq!(core.trial(i).unwrap().phase, phase);
            assert_eq!(core.trial(i).unwrap().reason, Some(cause.clone()));
        }
        assert_eq!(core.step(search.as_mut(), NOW).unwrap(), vec![Command::Finish(end.clone())]);
        assert_eq!(end.phase() == ExperimentPhase::Running, halt == Halt::Interrupt, "a shutdown pauses, a stop ends");
    }
}

#[test]
fn one_trial_can_be_stopped_alone_while_the_others_run_on() {
    let spec = ExperimentSpec::test().parallel(2);
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    core.step(search.as_mut(), NOW).unwrap();
    let cause = TrialReason::Other("asha".into());
    let commands = core.handle(Event::Stop { trial: 1, cause: cause.clone() }, NOW);
    assert_eq!(commands, vec![Command::Stop { trial: 1, cause: cause.clone() }]);
    assert!(core.handle(Event::Stop { trial: 1, cause: cause.clone() }, NOW).is_empty(), "stopped once");
    assert!(core.handle(Event::Stop { trial: 7, cause: cause.clone() }, NOW).is_empty(), "not running");
    let stopped = Finished { exit: Exit::Stopped, stderr_tail: vec![] };
    core.handle(Event::AttemptEnded { trial: 1, finished: stopped, tally: reporting("loss", &[0.4]) }, NOW);
    let t = core.trial(1).unwrap();
    assert_eq!((t.phase, t.reason.clone(), t.objective), (TrialPhase::Stopped, Some(cause), Some(0.4)));
    let next = core.step(search.as_mut(), NOW).unwrap();
    assert!(
        matches!(&next[..], [Command::Save(t), Command::Launch(_)] if t.index == 2),
        "its slot goes to a new trial"
    );
    assert_eq!(core.counts().running, 2, "trial 0 runs on");
}

#[test]
fn started_waiting_and_reattached_events_update_the_running_trial() {
    let spec = ExperimentSpec::test();
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    core.step(search.as_mut(), NOW).unwrap();
    let waiting = Event::Waiting { trial: 0, reason: "Unschedulable".into(), message: "no GPU".into() };
    let saved = core.handle(waiting, NOW);
    assert!(matches!(&saved[..], [Command::Save(t)] if t.reason == Some(TrialReason::Other("Unschedulable".into()))));
    core.handle(Event::Launched { trial: 0, dir: "/d/e-0000".into() }, NOW);
    let saved = core.handle(Event::Started { trial: 0, pid: 42, pid_stamp: Some("b@1".into()), gpus: vec![1] }, NOW);
    let [Command::Save(t)] = &saved[..] else { panic!("{saved:?}") };
    assert_eq!((t.phase, t.pid, t.gpus.clone(), t.reason.clone()), (TrialPhase::Running, Some(42), vec![1], None));
    assert_eq!(t.dir.as_deref(), Some("/d/e-0000"));
    core.handle(Event::Reattached { trial: 0 }, NOW);
    assert_eq!(core.trial(0).unwrap().attempts, 1, "the same attempt, not a new one");
    assert!(
        core.handle(Event::Started { trial: 5, pid: 1, pid_stamp: None, gpus: vec![] }, NOW).is_empty(),
        "unknown trials are ignored"
    );
}

#[test]
fn a_rerun_by_the_executor_is_a_new_attempt_without_a_launch() {
    let spec = ExperimentSpec::test();
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    core.step(search.as_mut(), NOW).unwrap();
    core.handle(Event::Started { trial: 0, pid: 0, pid_stamp: None, gpus: vec![] }, NOW);
    let saved = core.handle(Event::Rerun { trial: 0 }, NOW);
    assert!(matches!(&saved[..], [Command::Save(t)] if t.attempts == 2 && t.phase == TrialPhase::Running), "{saved:?}");
    let ended = core.handle(Event::AttemptEnded { trial: 0, finished: exit(0), tally: reporting("loss", &[0.2]) }, NOW);
    assert!(
        ended.iter().any(|c| matches!(c, Command::Ended(t) if t.phase == TrialPhase::Succeeded && t.attempts == 2))
    );
    assert!(core.handle(Event::Rerun { trial: 0 }, NOW).is_empty(), "an ended trial is not rerun");
}

#[test]
fn the_ranked_step_is_recorded_with_the_result() {
    let spec = ExperimentSpec::test();
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    core.step(search.as_mut(), NOW).unwrap();
    core.handle(Event::AttemptEnded { trial: 0, finished: exit(0), tally: reporting("loss", &[0.5, 0.1, 0.3]) }, NOW);
    let t = core.trial(0).unwrap();
    assert_eq!((t.objective, t.objective_step, t.last_step, t.exit_code), (Some(0.1), Some(2), Some(3), Some(0)));
    assert!(t.ranked_before_end());
}

#[test]
fn an_ask_hands_out_no_more_than_the_budget_and_the_parallel_limit_allow() {
    let spec = ExperimentSpec::test().budget(5).parallel(3);
    assert_eq!(room_for(&spec, ExperimentPhase::Running, 10, 0, 0), 3);
    assert_eq!(room_for(&spec, ExperimentPhase::Running, 10, 4, 0), 1);
    assert_eq!(room_for(&spec, ExperimentPhase::Running, 10, 2, 2), 1);
    assert_eq!(room_for(&spec, ExperimentPhase::Pending, 2, 0, 0), 2);
    for closed in [ExperimentPhase::Succeeded, ExperimentPhase::Failed, ExperimentPhase::Stopped] {
        assert_eq!(room_for(&spec, closed, 1, 0, 0), 0);
    }
    let trials = asked("e", 4, vec![crate::space::Assignment::new()], NOW);
    assert_eq!((trials[0].name.as_str(), trials[0].phase, trials[0].attempts), ("e-0004", TrialPhase::Running, 1));
}

#[test]
fn a_tell_without_the_objective_fails_and_names_what_was_told() {
    let spec = ExperimentSpec::test();
    assert_eq!(told(&spec, &reporting("loss", &[1.0]), Told::Succeeded).phase, TrialPhase::Succeeded);
    let v = told(&spec, &reporting("acc", &[1.0]), Told::Succeeded);
    assert_eq!(
        (v.reason, v.message.as_str()),
        (Some(TrialReason::MetricsUnavailable), "completed without loss (it reported acc)")
    );
    let v = told(&spec, &Tally::default(), Told::Failed { reason: None });
    assert_eq!(v.reason, Some(TrialReason::Other("Failed".into())));
    let v = told(&spec, &Tally::default(), Told::Failed { reason: Some("OutOfMemory".into()) });
    assert_eq!(v.reason.map(|r| r.to_string()).as_deref(), Some("OutOfMemory"));
}

#[test]
fn open_ask_tell_trials_past_the_timeout_fail_and_the_review_ends_the_experiment() {
    let spec = ExperimentSpec::test().external().budget(2).timeout("1s");
    let mut ledger = Ledger::new(&spec, asked("e", 0, vec![crate::space::Assignment::new(); 2], NOW));
    let soon = NOW.checked_add(jiff::SignedDuration::from_millis(900)).unwrap();
    let review_soon = review(&spec, &mut ledger, false, Halt::Run, soon);
    assert_eq!((review_soon.expired.len(), ledger.open().count(), review_soon.end), (0, 2, None));
    let late = NOW.checked_add(jiff::SignedDuration::from_secs(2)).unwrap();
    let review_late = review(&spec, &mut ledger, false, Halt::Run, late);
    assert_eq!(review_late.expired.iter().map(|t| t.index).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(review_late.expired[0].reason, Some(TrialReason::TimedOut));
    assert_eq!(review_late.expired[0].message.as_deref(), Some("no result within spec.trial.timeout (1s)"));
    assert_eq!(ledger.open().count(), 0, "the expired trials are closed in the ledger");
    assert_eq!(review_late.end, Some(EndReason::NoTrialSucceeded));
    let mut open = Ledger::new(&spec, asked("e", 0, vec![crate::space::Assignment::new()], NOW));
    assert_eq!(review(&spec, &mut open, false, Halt::Stop, NOW).end, Some(EndReason::StoppedByUser));
    assert_eq!(review(&spec, &mut open, false, Halt::Interrupt, NOW).end, None, "a shutdown ends nothing");
}

#[test]
fn the_ledger_shows_the_status_that_every_trial_gives_whatever_order_they_arrive_in() {
    let spec = ExperimentSpec::test().external().budget(10);
    let mut trials = asked("e", 0, vec![crate::space::Assignment::new(); 6], NOW);
    let outcomes = [(TrialPhase::Succeeded, Some(0.5)), (TrialPhase::Failed, None), (TrialPhase::Succeeded, Some(0.2))];
    for (trial, (phase, objective)) in trials.iter_mut().zip(outcomes) {
        trial.move_to(phase);
        trial.objective = objective;
    }
    trials[4].move_to(TrialPhase::Succeeded);
    trials[4].objective = Some(0.2); // ties trial 2: the earlier is the best
    let mut expected = ExperimentStatus::default();
    refresh(
        &mut expected,
        &spec,
        &trials,
        &trials.iter().filter(|t| !t.phase.is_finished()).map(|t| t.index).collect(),
    );
    let mut ledger = Ledger::default();
    for i in [4, 1, 5, 0, 3, 2] {
        ledger.put(&spec, trials[i].clone());
    }
    let mut status = ExperimentStatus::default();
    ledger.refresh(&mut status);
    assert_eq!(status, expected);
    assert_eq!(status.best_trial.as_ref().map(|b| b.name.as_str()), Some(trials[2].name.as_str()));
    assert_eq!(ledger.open().map(|t| t.index).collect::<Vec<_>>(), [3, 5]);
    assert!(!ledger.stale());
    ledger.put(&spec, trials[2].clone());
    assert!(ledger.stale(), "a succeeded trial written again asks for a rebuild");
}

#[test]
fn phase_changes_refuse_illegal_moves_and_clear_an_old_end() {
    let mut status = ExperimentStatus::default();
    assert!(!reopen(&mut status), "a pending experiment is not reopened");
    assert!(begin(&mut status, NOW));
    assert!(end_with(&mut status, EndReason::MaxTrialsReached, "done".into(), NOW));
    assert_eq!(status.phase, ExperimentPhase::Succeeded);
    assert!(status.completion_time.is_some());
    assert!(!begin(&mut status, NOW), "a finished experiment runs again only once reopened");
    assert!(!end_with(&mut status, EndReason::StoppedByUser, "x".into(), NOW), "Succeeded -> Stopped is illegal");
    assert!(reopen(&mut status));
    assert_eq!(
        (status.phase, status.reason.clone(), status.completion_time.clone()),
        (ExperimentPhase::Pending, None, None)
    );
    assert!(begin(&mut status, NOW) && status.phase == ExperimentPhase::Running);
    let refused = refused(EndReason::InvalidSpec, "spec.maxTrials: …".into());
    assert_eq!((refused.phase, refused.reason), (ExperimentPhase::Failed, Some(EndReason::InvalidSpec)));
}

#[test]
fn requeue_puts_unfinished_trials_back_and_leaves_finished_ones() {
    let mut running = asked("e", 0, vec![crate::space::Assignment::new()], NOW).remove(0);
    running.pid = Some(7);
    assert!(requeue(&mut running, NOW));
    assert_eq!(
        (running.phase, running.reason.clone(), running.pid),
        (TrialPhase::Pending, Some(TrialReason::ControllerLost), None)
    );
    let mut done = running.clone();
    done.move_to(TrialPhase::Running);
    done.move_to(TrialPhase::Succeeded);
    let before = done.clone();
    assert!(!requeue(&mut done, NOW));
    assert_eq!(done, before);
}

#[test]
fn history_orients_values_so_lower_is_better() {
    let spec = ExperimentSpec::test().maximize();
    let mut trials = asked("e", 0, vec![crate::space::Assignment::new(); 3], NOW);
    trials[0].move_to(TrialPhase::Succeeded);
    trials[0].objective = Some(0.9);
    trials[1].move_to(TrialPhase::Failed);
    let outcomes: Vec<crate::search::Outcome> = history(&spec, &trials).into_iter().map(|p| p.outcome).collect();
    use crate::search::Outcome;
    assert_eq!(outcomes, [Outcome::Loss(-0.9), Outcome::Failed, Outcome::Pending]);
}
