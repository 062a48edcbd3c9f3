use super::*;
use crate::spec::Objective;

fn objective(goal: Goal) -> Objective {
    Objective { metric: "m".into(), goal, target: None, strategy: None, additional_metrics: Vec::new() }
}

fn points(values: &[(i64, f64)]) -> Vec<Point> {
    values.iter().map(|&(step, value)| Point { step, value }).collect()
}

fn median_rule(goal: Goal, min_trials_required: u32, start_step: i64) -> Rule {
    Rule::new(StoppingSettings::Median { min_trials_required, start_step }, &objective(goal))
}

fn asha_rule(goal: Goal, min_resource: i64, max_resource: Option<i64>, grace_period: i64) -> Rule {
    let settings =
        StoppingSettings::Asha { min_resource, reduction_factor: 3, max_resource, grace_period, brackets: 1 };
    Rule::new(settings, &objective(goal))
}

/// Three completed trials, accuracy at steps 1..4. Running averages by step:
/// A .50 .55 .60 .65 | B .40 .45 .50 .55 | C .60 .65 .70 .75 → medians .50 .55 .60 .65.
fn completed_accuracy() -> Vec<Vec<Point>> {
    vec![
        points(&[(1, 0.5), (2, 0.6), (3, 0.7), (4, 0.8)]),
        points(&[(1, 0.4), (2, 0.5), (3, 0.6), (4, 0.7)]),
        points(&[(1, 0.6), (2, 0.7), (3, 0.8), (4, 0.9)]),
    ]
}

fn curves(done: &[Vec<Point>], completed: bool) -> Vec<Curve<'_>> {
    done.iter().enumerate().map(|(i, p)| Curve { trial: i as u32, completed, points: p }).collect()
}

fn judge(rule: &Rule, running: &[(i64, f64)], all: &[Curve<'_>]) -> Option<Decision> {
    let mine = points(running);
    rule.judge(&Curve { trial: 99, completed: false, points: &mine }, all)
}

#[test]
fn median_stops_a_trial_whose_best_so_far_is_below_the_completed_running_averages_median() {
    let done = completed_accuracy();
    let all = curves(&done, true);
    let rule = median_rule(Goal::Maximize, 3, 2);
    assert_eq!(judge(&rule, &[(1, 0.3)], &all), None, "step 1 is before startStep 2, however bad");
    let stop = judge(&rule, &[(1, 0.3), (2, 0.5)], &all).expect("0.5 < median 0.55 at step 2");
    assert_eq!(stop.step, 2);
    assert!(stop.reason.starts_with("median: best 0.5 by step 2 is worse than the median 0.55"), "{}", stop.reason);
    assert!(stop.reason.contains("of 3 completed trials"), "{}", stop.reason);
    assert_eq!(judge(&rule, &[(1, 0.3), (2, 0.56)], &all), None, "0.56 > 0.55 goes on");
    assert!(judge(&rule, &[(1, 0.3), (2, 0.56), (3, 0.58)], &all).is_some(), "best 0.58 < median 0.60 at step 3");
    assert_eq!(judge(&rule, &[(1, 0.7), (2, 0.2), (3, 0.1)], &all), None, "the best so far (0.7) is what counts");
}

#[test]
fn median_waits_for_min_trials_required_completed_trials_and_ignores_the_others() {
    let done = completed_accuracy();
    let mut all = curves(&done, true);
    let rule = median_rule(Goal::Maximize, 4, 2);
    assert_eq!(judge(&rule, &[(1, 0.1), (2, 0.1)], &all), None, "3 completed of the 4 required");
    let stopped = points(&[(1, 0.0), (2, 0.0)]);
    all.push(Curve { trial: 7, completed: false, points: &stopped });
    assert_eq!(judge(&rule, &[(1, 0.1), (2, 0.1)], &all), None, "an early-stopped trial is not in the median");
    let fourth = points(&[(1, 0.2), (2, 0.2)]);
    all.push(Curve { trial: 8, completed: true, points: &fourth });
    // Running averages at 2: .55 .45 .65 .20 → median (.45 + .55) / 2 = .50.
    let stop = judge(&rule, &[(1, 0.1), (2, 0.49)], &all).expect("0.49 < 0.50");
    assert!(stop.reason.contains("the median 0.5 of 4 completed"), "{}", stop.reason);
}

#[test]
fn median_respects_minimize() {
    // Losses 1 - accuracy: running averages at step 2: .45 .55 .35 → median .45.
    let done: Vec<Vec<Point>> = completed_accuracy()
        .into_iter()
        .map(|c| c.into_iter().map(|p| Point { step: p.step, value: 1.0 - p.value }).collect())
        .collect();
    let all = curves(&done, true);
    let rule = median_rule(Goal::Minimize, 3, 2);
    assert!(judge(&rule, &[(1, 0.7), (2, 0.5)], &all).is_some(), "a loss of 0.5 > 0.45 stops");
    assert_eq!(judge(&rule, &[(1, 0.7), (2, 0.44)], &all), None, "a loss of 0.44 < 0.45 goes on");
}

/// Trials reaching rung 1 one after another (asynchronously): each is judged against those that
/// reached it before, and stays a member of the rung whatever became of it.
#[test]
fn asha_keeps_only_the_top_third_of_those_that_reached_the_rung_as_they_arrive() {
    let rule = asha_rule(Goal::Maximize, 1, Some(27), 1);
    // value at rung 1, expected: n, keep = max(1, n/3), rank → stopped?
    let arrivals = [
        (0.50, None),
        (0.40, Some("asha: rung 1, not in top 1/3 of 2")),
        (0.60, None),
        (0.55, Some("asha: rung 1, not in top 1/3 of 4")),
        (0.70, None),
        (0.65, None), // n = 6: the top 2 go on, and 0.65 is second
        (0.30, Some("asha: rung 1, not in top 1/3 of 7")),
    ];
    let mut seen: Vec<Vec<Point>> = Vec::new();
    for (value, expected) in arrivals {
        let all = curves(&seen, false);
        let decision = judge(&rule, &[(1, value)], &all);
        assert_eq!(decision.as_ref().map(|d| d.reason.as_str()), expected, "arrival of {value}");
        seen.push(points(&[(1, value)]));
    }
}

#[test]
fn asha_judges_only_at_rungs_first_crossed_and_every_rung_a_jump_crosses() {
    let rule = asha_rule(Goal::Maximize, 1, Some(27), 1);
    let leader = points(&[(1, 0.9), (3, 0.9), (9, 0.9)]);
    let all = [Curve { trial: 0, completed: true, points: &leader }];
    assert_eq!(judge(&rule, &[(1, 0.95), (2, 0.1)], &all), None, "step 2 is no rung");
    // Crossing rung 3 at step 4: its value there is the best so far (strategy max) 0.95.
    assert_eq!(judge(&rule, &[(1, 0.95), (2, 0.1), (4, 0.2)], &all), None);
    let stop = judge(&rule, &[(1, 0.95), (2, 0.1), (10, 0.5)], &all);
    assert_eq!(stop, None, "best so far 0.95 leads rungs 3 and 9");
    let stop = judge(&rule, &[(1, 0.5), (10, 0.5)], &all).expect("one report past rungs 3 and 9");
    assert_eq!(stop, Decision { step: 10, reason: "asha: rung 3, not in top 1/3 of 2".into() });
    assert_eq!(rungs(1, 3, Some(27), 100), [1, 3, 9]);
    assert_eq!(rungs(2, 2, None, 20), [2, 4, 8, 16]);
    assert_eq!(rungs(1, 3, Some(9), 9), [1, 3], "no rung at maxResource: a trial there has its budget");
}

#[test]
fn asha_stops_nothing_before_the_grace_period_and_respects_minimize() {
    let better = points(&[(1, 0.1), (3, 0.1)]);
    let all = [Curve { trial: 0, completed: false, points: &better }];
    let graced = asha_rule(Goal::Minimize, 1, None, 3);
    assert_eq!(judge(&graced, &[(1, 0.5)], &all), None, "rung 1 is before gracePeriod 3");
    assert!(judge(&graced, &[(1, 0.5), (3, 0.5)], &all).is_some(), "rung 3: loss 0.5 is worse than 0.1");
    assert_eq!(judge(&graced, &[(1, 0.5), (3, 0.05)], &all), None, "a lower loss leads");
    let maximize = asha_rule(Goal::Maximize, 1, None, 3);
    assert_eq!(judge(&maximize, &[(1, 0.5), (3, 0.5)], &all), None, "maximizing, 0.5 beats 0.1");
}

#[test]
fn decisions_are_the_same_for_the_same_reports_in_any_order() {
    let done = completed_accuracy();
    let mut all = curves(&done, true);
    for rule in [median_rule(Goal::Maximize, 3, 2), asha_rule(Goal::Maximize, 1, None, 1)] {
        let first = judge(&rule, &[(1, 0.45), (2, 0.5), (3, 0.52)], &all);
        all.reverse();
        assert_eq!(judge(&rule, &[(1, 0.45), (2, 0.5), (3, 0.52)], &all), first);
        assert!(first.is_some());
    }
    let rule = median_rule(Goal::Maximize, 3, 2);
    assert_eq!(rule.judge(&Curve { trial: 1, completed: false, points: &[] }, &all), None, "no report, no stop");
}

#[test]
fn reasons_show_values_to_six_significant_digits() {
    // Running averages at step 3: (.5 + .6 + .7) / 3 = .6, .5, .7 → median .6 (0.6000000000000001 in full).
    let done = completed_accuracy();
    let all = curves(&done, true);
    let stop = judge(&median_rule(Goal::Maximize, 3, 2), &[(1, 0.1), (2, 0.2), (3, 1.0 / 3.0)], &all).unwrap();
    assert!(
        stop.reason.starts_with("median: best 0.333333 by step 3 is worse than the median 0.6 of 3"),
        "{}",
        stop.reason
    );
    assert_eq!((shown(1.5e-9), shown(123456.7), shown(0.0)), ("1.5e-9".into(), "123457".into(), "0".into()));
}

/// Two brackets, eta 3, max 9: bracket 0 (even trials) has rungs 1 and 3, bracket 1 (odd trials)
/// only rung 3; each trial is ranked among its own bracket's.
#[test]
fn asha_brackets_start_later_and_rank_each_trial_within_its_own_bracket() {
    let settings = StoppingSettings::Asha {
        min_resource: 1,
        reduction_factor: 3,
        max_resource: Some(9),
        grace_period: 1,
        brackets: 2,
    };
    let rule = Rule::new(settings, &objective(Goal::Maximize));
    let leader = points(&[(1, 0.9), (2, 0.9), (3, 0.9)]);
    let judge_as = |index: u32, mine: &[(i64, f64)], others: &[Curve<'_>]| {
        let mine = points(mine);
        rule.judge(&Curve { trial: index, completed: false, points: &mine }, others)
    };
    // Trial 0 (bracket 0) leads rung 1 and 3.
    let all = [Curve { trial: 0, completed: false, points: &leader }];
    // Trial 2, in bracket 0 with it, is behind at rung 1: stopped there.
    let stop = judge_as(2, &[(1, 0.1)], &all).expect("bracket 0 has a rung at 1");
    assert_eq!(stop.reason, "asha: bracket 0, rung 1, not in top 1/3 of 2");
    // Trial 1, in bracket 1, has no rung at 1, and at 3 it is alone in its bracket: it goes on.
    assert_eq!(judge_as(1, &[(1, 0.1)], &all), None, "bracket 1's first rung is 3");
    assert_eq!(judge_as(1, &[(1, 0.1), (2, 0.1), (3, 0.1)], &all), None, "trial 0 is in the other bracket");
    // Trial 3 joins bracket 1 behind trial 1 at rung 3: stopped, ranked among 2, not 3.
    let odd = points(&[(1, 0.1), (2, 0.1), (3, 0.5)]);
    let all =
        [Curve { trial: 0, completed: false, points: &leader }, Curve { trial: 1, completed: false, points: &odd }];
    let stop = judge_as(3, &[(1, 0.1), (2, 0.1), (3, 0.2)], &all).expect("behind trial 1 at rung 3");
    assert_eq!(stop.reason, "asha: bracket 1, rung 3, not in top 1/3 of 2");
}
