//! Ranking trials by the objective, and showing the ranking as a table, JSON or CSV.
//!
//! Succeeded trials are ranked best first (ties keep trial order); early-stopped trials follow,
//! unranked, best value first (the value they had reached, at their last step); trials without a
//! result follow, unranked: still running or queued first, then stopped, then failed. Only a
//! succeeded trial is ranked, so only one can be the best or be promoted. A row that did not succeed
//! shows its cause in one line; a value ranked from before its trial's last step (`strategy:
//! min`/`max`) is marked with its step, since the trial's saved model may be a later one's.

mod outcome;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::{Experiment, Goal};
use crate::trial::{Trial, TrialPhase, parameters_json};

pub use outcome::{cause, step_note};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Leaderboard {
    pub experiment: String,
    pub objective: ObjectiveRef,
    pub trials: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectiveRef {
    pub metric: String,
    pub goal: Goal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    pub name: String,
    pub phase: TrialPhase,
    pub objective: Option<f64>,
    /// The step at which the objective value was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_step: Option<i64>,
    /// The highest step the trial reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
    pub parameters: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    pub duration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
}

/// The value a trial is ranked by: its objective, once it succeeded with one (the first group of
/// the leaderboard; the others are in trial order).
pub fn ranked_value(t: &Trial) -> Option<f64> {
    t.objective.filter(|_| t.phase == TrialPhase::Succeeded)
}

/// Ranks `trials`; `top` keeps the first N rows.
pub fn rank(experiment: &Experiment, trials: &[Trial], top: Option<usize>, now: Timestamp) -> Leaderboard {
    let objective = &experiment.spec.objective;
    let mut order: Vec<&Trial> = trials.iter().collect();
    let group = |t: &Trial| match t.phase {
        _ if ranked_value(t).is_some() => 0,
        TrialPhase::EarlyStopped if t.objective.is_some() => 1,
        TrialPhase::Pending | TrialPhase::Running | TrialPhase::Interrupted => 2,
        TrialPhase::Stopped | TrialPhase::EarlyStopped | TrialPhase::Succeeded => 3,
        TrialPhase::Failed => 4,
    };
    order.sort_by(|a, b| {
        group(a).cmp(&group(b)).then_with(|| {
            let (x, y) = (a.objective.unwrap_or_default(), b.objective.unwrap_or_default());
            let by_value = if objective.goal == Goal::Maximize { y.total_cmp(&x) } else { x.total_cmp(&y) };
            if group(a) <= 1 { by_value.then(a.index.cmp(&b.index)) } else { a.index.cmp(&b.index) }
        })
    });
    let rows = order
        .into_iter()
        .enumerate()
        .map(|(i, t)| Row {
            rank: (group(t) == 0).then_some(i as u32 + 1),
            name: t.name.clone(),
            phase: t.phase,
            objective: t.objective,
            objective_step: t.objective_step,
            last_step: t.last_step,
            parameters: parameters_json(&t.parameters),
            metrics: t.metrics.clone(),
            duration_seconds: t.duration_seconds(now).map(|s| (s * 1000.0).round() / 1000.0),
            reason: t.reason.as_ref().map(ToString::to_string).filter(|_| t.phase != TrialPhase::Succeeded),
            message: t.message.clone(),
            output_dir: t.dir.as_ref().map(|d| format!("{d}/output")),
        })
        .take(top.unwrap_or(usize::MAX))
        .collect();
    Leaderboard {
        experiment: experiment.metadata.name.clone().unwrap_or_default(),
        objective: ObjectiveRef { metric: objective.metric.clone(), goal: objective.goal },
        trials: rows,
    }
}

impl Leaderboard {
    /// Columns: rank, trial, phase, objective, the additional metrics, every parameter, duration,
    /// then (for machines) the objective's step and the last step, and the cause (for people,
    /// only when a row has one).
    fn columns(&self, experiment: &Experiment, form: Form) -> (Vec<String>, Vec<Vec<String>>) {
        let spec = &experiment.spec;
        let mut header = vec!["rank".to_string(), "trial".into(), "phase".into(), spec.objective.metric.clone()];
        header.extend(spec.objective.additional_metrics.iter().cloned());
        header.extend(spec.parameters.iter().map(|p| p.name.clone()));
        header.push("seconds".into());
        let with_cause = form == Form::Machines || self.trials.iter().any(|r| r.cause().is_some());
        if form == Form::Machines {
            header.extend(["objective_step".into(), "last_step".into()]);
        }
        if with_cause {
            header.push("cause".into());
        }
        let rows = self
            .trials
            .iter()
            .map(|r| {
                let mut row = r.cells(experiment, form);
                if form == Form::Machines {
                    row.extend([r.objective_step, r.last_step].map(|s| s.map_or(String::new(), |s| s.to_string())));
                }
                if with_cause {
                    row.push(r.cause().unwrap_or_default());
                }
                row
            })
            .collect();
        (header, rows)
    }

    /// An aligned text table, with a footnote when a ranked value came before its trial's end.
    pub fn table(&self, experiment: &Experiment) -> String {
        let (header, rows) = self.columns(experiment, Form::People);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = line(&header);
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        if self.trials.iter().any(|r| r.early_step().is_some()) {
            out.push_str(EARLY_STEP_FOOTNOTE);
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV with the table's columns, numbers in full precision, and the steps apart.
    pub fn csv(&self, experiment: &Experiment) -> String {
        let (header, rows) = self.columns(experiment, Form::Machines);
        let escape = |c: &String| {
            if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
        };
        std::iter::once(header).chain(rows).map(|r| r.iter().map(escape).collect::<Vec<_>>().join(",") + "\n").collect()
    }
}

/// Explains the table's `@ step N of M` mark.
const EARLY_STEP_FOOTNOTE: &str = "@ step N of M: the value ranked was reported before the trial's last step; its saved \
                                   model is the last step's unless its trainer keeps the best step's checkpoint";

/// Who reads a rendering: people (the table: 6 significant digits, the step as a mark on the
/// value) or machines (CSV: every digit, the steps in their own columns).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    People,
    Machines,
}

impl Row {
    /// The row's cause in one line (see [`cause`]).
    pub fn cause(&self) -> Option<String> {
        outcome::one_line(self.phase, self.reason.as_deref(), self.message.as_deref())
    }

    /// `(step, last)` when the ranked value was reported at an earlier step than the trial's last
    /// (the rule of [`Trial::ranked_before_end`], for rows read over the wire).
    pub fn early_step(&self) -> Option<(i64, i64)> {
        outcome::early_step(self.objective_step, self.last_step)
    }

    /// The cells up to the duration.
    fn cells(&self, experiment: &Experiment, form: Form) -> Vec<String> {
        let shown = match form {
            Form::People => number,
            Form::Machines => exact,
        };
        let spec = &experiment.spec;
        let objective = self.objective.map_or(String::new(), |v| match (form, self.early_step()) {
            (Form::People, Some((step, last))) => format!("{} @ step {step} of {last}", number(v)),
            _ => shown(v),
        });
        let mut row = vec![
            self.rank.map_or(String::new(), |k| k.to_string()),
            self.name.clone(),
            format!("{:?}", self.phase),
            objective,
        ];
        let metrics = &spec.objective.additional_metrics;
        row.extend(metrics.iter().map(|m| self.metrics.get(m).map_or(String::new(), |v| shown(*v))));
        row.extend(spec.parameters.iter().map(|p| match self.parameters.get(&p.name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) if n.is_f64() => shown(n.as_f64().unwrap_or_default()),
            Some(v) => v.to_string(),
            None => String::new(),
        }));
        row.push(self.duration_seconds.map_or(String::new(), |s| format!("{s:.1}")));
        row
    }
}

/// A parameter value as shown to people: numbers with 6 significant digits, names as they are.
pub fn param(v: &crate::space::ParamValue) -> String {
    match v {
        crate::space::ParamValue::Float(f) => number(*f),
        other => other.to_string(),
    }
}

/// A number as shown to people: 6 significant digits without trailing zeros (`0.0114159`,
/// `123457`), in scientific notation when tiny or huge (`1.5e-9`, never `0`).
pub fn number(v: f64) -> String {
    /// Below this (and from `LARGE` up) a fixed notation would show only zeros or too many digits.
    const SMALL: i32 = -4;
    const LARGE: i32 = 15;
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(SMALL..LARGE).contains(&magnitude) {
        let s = format!("{v:.5e}");
        return match s.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", without_trailing_zeros(mantissa)),
            None => s,
        };
    }
    let decimals = (5 - magnitude).max(0) as usize;
    without_trailing_zeros(&format!("{v:.decimals$}")).to_string()
}

fn without_trailing_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// A number in a machine format: every digit, as Rust reads it back (`0.1`, `1e-9`).
fn exact(v: f64) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Assignment, ParamValue};

    fn trial(index: u32, phase: TrialPhase, objective: Option<f64>) -> Trial {
        let mut params = Assignment::new();
        params.insert("x".into(), ParamValue::Int(index as i64));
        let mut t = Trial::new("e", index, params, Timestamp::UNIX_EPOCH);
        t.phase = phase;
        t.objective = objective;
        t
    }

    fn experiment(goal: &str) -> Experiment {
        let spec = crate::spec::ExperimentSpec::test().metric("acc").also(&["loss"]);
        if goal == "maximize" { spec.maximize() } else { spec }.named("e")
    }

    #[test]
    fn ranks_best_first_and_puts_failed_trials_last_without_rank() {
        use TrialPhase::*;
        let trials = [
            trial(0, Failed, None),
            trial(1, Succeeded, Some(0.5)),
            trial(2, Running, None),
            trial(3, Succeeded, Some(0.9)),
        ];
        let board = rank(&experiment("maximize"), &trials, None, Timestamp::UNIX_EPOCH);
        let names: Vec<(Option<u32>, &str)> = board.trials.iter().map(|r| (r.rank, r.name.as_str())).collect();
        assert_eq!(names, [(Some(1), "e-0003"), (Some(2), "e-0001"), (None, "e-0002"), (None, "e-0000")]);
        let board = rank(&experiment("minimize"), &trials, Some(1), Timestamp::UNIX_EPOCH);
        assert_eq!(board.trials.len(), 1);
        assert_eq!(board.trials[0].name, "e-0001");
    }

    #[test]
    fn early_stopped_trials_follow_the_completed_ones_unranked_best_value_first() {
        use TrialPhase::*;
        let trials = [
            trial(0, EarlyStopped, Some(0.95)),
            trial(1, Succeeded, Some(0.5)),
            trial(2, EarlyStopped, Some(0.99)),
            trial(3, Running, None),
            trial(4, Failed, None),
        ];
        let board = rank(&experiment("maximize"), &trials, None, Timestamp::UNIX_EPOCH);
        let names: Vec<(Option<u32>, &str)> = board.trials.iter().map(|r| (r.rank, r.name.as_str())).collect();
        let expected = [(Some(1), "e-0001"), (None, "e-0002"), (None, "e-0000"), (None, "e-0003"), (None, "e-0004")];
        assert_eq!(names, expected, "0.99 early-stopped is no rival to a completed 0.5");
    }

    #[test]
    fn table_and_csv_have_a_column_per_metric_and_parameter() {
        let exp = experiment("maximize");
        let mut t = trial(0, TrialPhase::Succeeded, Some(0.5));
        t.metrics.insert("loss".into(), 0.25);
        let board = rank(&exp, &[t], None, Timestamp::UNIX_EPOCH);
        let csv = board.csv(&exp);
        assert_eq!(
            csv,
            "rank,trial,phase,acc,loss,x,seconds,objective_step,last_step,cause\n1,e-0000,Succeeded,0.5,0.25,0,,,,\n"
        );
        assert!(board.table(&exp).starts_with("rank  trial   phase      acc  loss  x  seconds\n1     e-0000"));
    }

    fn failed(index: u32) -> Trial {
        let mut t = trial(index, TrialPhase::Failed, None);
        t.reason = Some("NonZeroExit".into());
        t.message = Some("exit code 3; stderr ends with:\nloading\nboom".into());
        t
    }

    #[test]
    fn failed_rows_show_their_cause_and_the_json_keeps_reason_and_message_as_they_are() {
        let exp = experiment("maximize");
        let board = rank(&exp, &[trial(0, TrialPhase::Succeeded, Some(0.5)), failed(1)], None, Timestamp::UNIX_EPOCH);
        let table = board.table(&exp);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("seconds  cause"), "{table}");
        assert!(lines[2].contains("Failed ") && lines[2].ends_with("NonZeroExit: exit code 3: boom"), "{table}");
        assert!(lines[1].ends_with("Succeeded  0.5        0"), "no cause on a succeeded row: {table}");
        assert!(board.csv(&exp).ends_with(",,,NonZeroExit: exit code 3: boom\n"), "{}", board.csv(&exp));
        let json = serde_json::to_value(&board).unwrap();
        assert_eq!(json["trials"][1]["reason"], "NonZeroExit");
        assert_eq!(json["trials"][1]["message"], "exit code 3; stderr ends with:\nloading\nboom");
        assert!(json["trials"][1].get("cause").is_none(), "the JSON is unchanged");
    }

    #[test]
    fn a_table_without_failures_has_no_cause_column() {
        let exp = experiment("maximize");
        let board = rank(&exp, &[trial(0, TrialPhase::Succeeded, Some(0.5))], None, Timestamp::UNIX_EPOCH);
        assert!(!board.table(&exp).contains("cause"));
    }

    #[test]
    fn a_value_ranked_from_before_the_last_step_is_marked_and_explained() {
        let exp = experiment("maximize");
        let mut early = trial(0, TrialPhase::Succeeded, Some(0.0114159265));
        (early.objective_step, early.last_step) = (Some(1), Some(21));
        let mut last = trial(1, TrialPhase::Succeeded, Some(0.001));
        (last.objective_step, last.last_step) = (Some(4), Some(4));
        let board = rank(&exp, &[early, last], None, Timestamp::UNIX_EPOCH);
        let table = board.table(&exp);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].contains(" 0.0114159 @ step 1 of 21 "), "{table}");
        assert!(lines[2].contains(" 0.001 ") && !lines[2].contains('@'), "{table}");
        assert_eq!(lines[3], EARLY_STEP_FOOTNOTE);
        assert!(board.csv(&exp).contains(",0.0114159265,"), "CSV values stay plain numbers");
        assert!(board.csv(&exp).contains(",1,21,\n"), "{}", board.csv(&exp));
        let json = serde_json::to_value(&board).unwrap();
        assert_eq!((&json["trials"][0]["objectiveStep"], &json["trials"][0]["lastStep"]), (&1.into(), &21.into()));
        let plain = rank(&exp, &[trial(2, TrialPhase::Succeeded, Some(0.5))], None, Timestamp::UNIX_EPOCH);
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json["trials"][0].get("objectiveStep").is_none() && json["trials"][0].get("lastStep").is_none());
        assert!(!plain.table(&exp).contains('@'), "no footnote without a mark");
    }

    #[test]
    fn a_row_read_over_the_wire_without_steps_or_cause_still_decodes() {
        let row = r#"{"name": "e-0000", "phase": "Failed", "objective": null, "parameters": {}, "metrics": {},
                      "durationSeconds": null, "reason": "NonZeroExit", "message": "exit code 3"}"#;
        let row: Row = serde_json::from_str(row).unwrap();
        assert_eq!((row.objective_step, row.last_step), (None, None));
        assert_eq!(row.cause().as_deref(), Some("NonZeroExit: exit code 3"));
    }

    #[test]
    fn numbers_shown_to_people_keep_six_significant_digits() {
        let cases = [
            (0.011416, "0.011416"),
            (0.0114159265, "0.0114159"),
            (0.123456789, "0.123457"),
            (123456.789, "123457"),
            (2.0, "2"),
            (-0.5, "-0.5"),
            (1.5e-9, "1.5e-9"),
            (-2.5e-7, "-2.5e-7"),
            (1e20, "1e20"),
            (0.0, "0"),
        ];
        for (v, shown) in cases {
            assert_eq!(number(v), shown, "{v}");
        }
    }

    #[test]
    fn csv_keeps_every_digit_and_the_table_six_significant_ones() {
        let exp = experiment("maximize");
        let t = trial(0, TrialPhase::Succeeded, Some(0.123456789));
        let board = rank(&exp, &[t], None, Timestamp::UNIX_EPOCH);
        assert!(board.csv(&exp).contains(",0.123456789,"), "{}", board.csv(&exp));
        assert!(board.table(&exp).contains(" 0.123457 "), "{}", board.table(&exp));
    }
}
