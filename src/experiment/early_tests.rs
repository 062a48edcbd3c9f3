//! Early stopping through the core: a step report that loses stops its trial (saved first), the
//! attempt then ends `EarlyStopped`, which counts toward maxTrials and never as a failure.

use jiff::Timestamp;
use serde_json::json;

use super::super::*;
use crate::search;
use crate::spec::StoppingRule;

const NOW: Timestamp = Timestamp::UNIX_EPOCH;

fn asha() -> ExperimentSpec {
    let settings = json!({"minResource": 1, "reductionFactor": 3, "maxResource": 27});
    ExperimentSpec::test().early_stopping(StoppingRule::Asha, settings).budget(4).parallel(3).max_failed(0)
}

fn loss(trial: &Trial, step: i64, value: f64) -> Event {
    let o = Observation { attempt: trial.attempts, metric: "loss".into(), value, step: Some(step), time: NOW };
    Event::Observed { trial: trial.index, observations: vec![o] }
}

fn tally(values: &[(i64, f64)]) -> Tally {
    let mut t = Tally::default();
    for &(step, v) in values {
        t.add_at("loss", v, Some(step));
    }
    t
}

fn end(trial: u32, exit: Exit, values: &[(i64, f64)]) -> Event {
    Event::AttemptEnded { trial, finished: Finished { exit, stderr_tail: Vec::new() }, tally: tally(values) }
}

/// The trials the core's next step launches.
fn launches(core: &mut Core, search: &mut dyn Search) -> Vec<Trial> {
    let commands = core.step(search, NOW).unwrap();
    commands.into_iter().filter_map(|c| if let Command::Launch(t) = c { Some(t) } else { None }).collect()
}

/// The core with `n` trials launched and started.
fn started(spec: ExperimentSpec, n: usize) -> (Core, Box<dyn Search>, Vec<Trial>) {
    let mut search = search::build(&spec, 1).unwrap();
    let mut core = Core::new("e", spec, Vec::new());
    let launched = launches(&mut core, search.as_mut());
    assert_eq!(launched.len(), n);
    for t in &launched {
        core.handle(Event::Started { trial: t.index, pid: 1, pid_stamp: None, gpus: vec![] }, NOW);
    }
    (core, search, launched)
}

fn the_ended(commands: &[Command]) -> &Trial {
    commands.iter().find_map(|c| if let Command::Ended(t) = c { Some(t) } else { None }).expect("an Ended command")
}

#[test]
fn a_losing_report_stops_its_trial_which_ends_early_stopped_without_counting_as_a_failure() {
    let (mut core, mut search, t) = started(asha(), 3);
    assert_eq!(core.handle(loss(&t[0], 1, 0.5), NOW), [], "the first at rung 1 goes on");
    let commands = core.handle(loss(&t[1], 1, 0.9), NOW);
    let decision = EarlyStop { step: 1, reason: "asha: rung 1, not in top 1/3 of 2".into() };
    match commands.as_slice() {
        [Command::Save(saved), Command::Stop { trial: 1, cause: TrialReason::EarlyStopped }] => {
            assert_eq!(saved.early_stop.as_ref(), Some(&decision), "the decision is saved before the stop is sent");
        }
        other => panic!("expected a save then a stop, got {other:?}"),
    }
    assert_eq!(core.handle(loss(&t[1], 2, 0.01), NOW), [], "a trial being stopped is not judged again");
    let ended = core.handle(end(1, Exit::Stopped, &[(1, 0.9), (2, 0.01)]), NOW);
    let stopped = the_ended(&ended);
    assert_eq!(stopped.phase, TrialPhase::EarlyStopped);
    assert_eq!(stopped.reason, Some(TrialReason::EarlyStopped));
    assert_eq!(stopped.message.as_deref(), Some("at step 1: asha: rung 1, not in top 1/3 of 2"));
    assert_eq!((stopped.objective, stopped.last_step), (Some(0.01), Some(2)), "every report is kept");
    assert_eq!(core.handle(loss(&t[2], 1, 0.4), NOW), [], "the best of 3 at rung 1 goes on");
    core.handle(end(0, Exit::Code(0), &[(1, 0.5), (2, 0.45)]), NOW);
    core.handle(end(2, Exit::Code(0), &[(1, 0.4), (2, 0.3)]), NOW);
    let c = core.counts();
    assert_eq!((c.succeeded, c.failed, c.early_stopped, c.ended()), (2, 0, 1, 3));
    // maxFailedTrials 0 is not exceeded, and the early stop counts toward maxTrials (4): one more.
    let next = core.step(search.as_mut(), NOW).unwrap();
    let fourth = next.iter().find_map(|c| if let Command::Launch(t) = c { Some(t.index) } else { None });
    assert_eq!(fourth, Some(3), "{next:?}");
    core.handle(end(3, Exit::Code(0), &[(1, 0.6)]), NOW);
    assert_eq!(core.step(search.as_mut(), NOW).unwrap(), [Command::Finish(EndReason::MaxTrialsReached)]);
    assert_eq!(core.best().map(|b| b.index), Some(2), "the early-stopped trial's 0.01 is never the best");
}

#[test]
fn the_search_sees_an_early_stopped_trial_s_value_not_a_pending_or_failed_trial() {
    let spec = asha().maximize();
    let mut t = Trial::new("e", 0, Default::default(), NOW);
    (t.phase, t.objective) = (TrialPhase::EarlyStopped, Some(0.7));
    assert_eq!(past(&spec, &t).outcome, search::Outcome::Loss(-0.7), "oriented so that lower is better");
    t.objective = None;
    assert_eq!(past(&spec, &t).outcome, search::Outcome::Pending, "no value reached: nothing to learn from");
}

#[test]
fn reports_a_stopped_trial_made_while_its_stop_landed_do_not_join_later_rungs() {
    let (mut core, _, t) = started(asha(), 3);
    for (trial, value) in [(0, 0.5), (1, 0.9)] {
        core.handle(loss(&t[trial], 1, value), NOW);
    }
    assert!(core.trial(1).unwrap().early_stop.is_some(), "0.9 trails 0.5 at rung 1");
    core.handle(loss(&t[0], 3, 0.5), NOW);
    core.handle(loss(&t[1], 3, 0.1), NOW); // raced past rung 3 before the SIGTERM landed
    assert_eq!(core.handle(loss(&t[2], 1, 0.4), NOW), [], "the best of 3 at rung 1");
    // Rung 3: 0.5 (trial 0) and 0.45: the first of 2 goes on; with trial 1's 0.1 it would be 2nd of 3.
    assert_eq!(core.handle(loss(&t[2], 3, 0.45), NOW), []);
}

#[test]
fn a_decision_made_by_the_push_route_ends_the_attempt_early_stopped_even_when_it_exits_0() {
    let (mut core, _, _) = started(asha(), 3);
    let decision = EarlyStop { step: 3, reason: "asha: rung 3, not in top 1/3 of 4".into() };
    let commands = core.handle(Event::Decided { trial: 2, decision: decision.clone() }, NOW);
    assert!(matches!(commands.as_slice(), [Command::Save(_), Command::Stop { trial: 2, .. }]), "{commands:?}");
    let ended = core.handle(end(2, Exit::Code(0), &[(3, 0.7)]), NOW);
    assert_eq!(the_ended(&ended).phase, TrialPhase::EarlyStopped);
    assert_eq!(the_ended(&ended).early_stop, Some(decision));
}

#[test]
fn a_resumed_core_keeps_every_rung_membership_and_never_reruns_a_stopped_trial() {
    // Before the crash: trial 0 led rung 1 and succeeded; trial 1 was stopped but still ran.
    let spec = asha();
    let mut done = Trial::new("e", 0, Default::default(), NOW);
    (done.phase, done.attempts) = (TrialPhase::Succeeded, 1);
    let mut stopping = Trial::new("e", 1, Default::default(), NOW);
    (stopping.phase, stopping.attempts) = (TrialPhase::Running, 1);
    stopping.early_stop = Some(EarlyStop { step: 1, reason: "asha: rung 1, not in top 1/3 of 2".into() });
    assert!(!requeue(&mut stopping, NOW), "a decided trial is not re-queued");
    assert_eq!(stopping.phase, TrialPhase::EarlyStopped);
    assert_eq!(stopping.message.as_deref(), Some("at step 1: asha: rung 1, not in top 1/3 of 2"));
    let observed = |i: u32| {
        let value = if i == 0 { 0.2 } else { 0.9 };
        vec![Observation { attempt: 1, metric: "loss".into(), value, step: Some(1), time: NOW }]
    };
    let trials = vec![done, stopping];
    let reports = Reports::of(&spec, &trials, observed);
    let mut core = Core::new("e", spec, trials).with_reports(reports);
    let mut search = search::build(core.spec(), 1).unwrap();
    let launched = launches(&mut core, search.as_mut());
    assert_eq!(launched.iter().map(|t| t.index).collect::<Vec<_>>(), [2, 3], "neither old trial runs again");
    core.handle(Event::Started { trial: 2, pid: 1, pid_stamp: None, gpus: vec![] }, NOW);
    let commands = core.handle(loss(&launched[0], 1, 0.5), NOW);
    let stop = commands.iter().any(|c| matches!(c, Command::Stop { trial: 2, cause: TrialReason::EarlyStopped }));
    assert!(stop, "0.5 is second of 3 at rung 1 (0.2, 0.9 from before the restart): {commands:?}");
}
