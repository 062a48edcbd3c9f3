//! Ranking trials by the objective, and showing the ranking as a table, JSON or CSV.
//!
//! Succeeded trials are ranked best first (ties keep trial order); trials without a result follow,
//! unranked: still running or queued first, then stopped, then failed.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::{Experiment, Goal};
use crate::trial::{Trial, TrialPhase, parameters_json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leaderboard {
    pub experiment: String,
    pub objective: ObjectiveRef,
    pub trials: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveRef {
    pub metric: String,
    pub goal: Goal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    pub name: String,
    pub phase: TrialPhase,
    pub objective: Option<f64>,
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

/// Ranks `trials`; `top` keeps the first N rows.
pub fn rank(experiment: &Experiment, trials: &[Trial], top: Option<usize>, now: Timestamp) -> Leaderboard {
    let objective = &experiment.spec.objective;
    let mut order: Vec<&Trial> = trials.iter().collect();
    let group = |t: &Trial| match (t.phase, t.objective) {
        (TrialPhase::Succeeded, Some(_)) => 0,
        (TrialPhase::Pending | TrialPhase::Running | TrialPhase::Interrupted, _) => 1,
        (TrialPhase::Stopped, _) | (TrialPhase::Succeeded, None) => 2,
        (TrialPhase::Failed, _) => 3,
    };
    order.sort_by(|a, b| {
        group(a).cmp(&group(b)).then_with(|| {
            let (x, y) = (a.objective.unwrap_or_default(), b.objective.unwrap_or_default());
            let by_value = if objective.goal == Goal::Maximize { y.total_cmp(&x) } else { x.total_cmp(&y) };
            if group(a) == 0 { by_value.then(a.index.cmp(&b.index)) } else { a.index.cmp(&b.index) }
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
            parameters: parameters_json(&t.parameters),
            metrics: t.metrics.clone(),
            duration_seconds: t.duration_seconds(now).map(|s| (s * 1000.0).round() / 1000.0),
            reason: t.reason.clone().filter(|_| t.phase != TrialPhase::Succeeded),
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
    /// Columns: rank, trial, phase, objective, the additional metrics, every parameter, duration;
    /// values written by `number`.
    fn columns(&self, experiment: &Experiment, number: fn(f64) -> String) -> (Vec<String>, Vec<Vec<String>>) {
        let spec = &experiment.spec;
        let metrics = &spec.objective.additional_metrics;
        let params: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
        let mut header = vec!["rank".to_string(), "trial".into(), "phase".into(), spec.objective.metric.clone()];
        header.extend(metrics.iter().cloned());
        header.extend(params.iter().map(|p| p.to_string()));
        header.push("seconds".into());
        let rows = self
            .trials
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.rank.map_or(String::new(), |k| k.to_string()),
                    r.name.clone(),
                    r.reason.as_ref().map_or_else(|| format!("{:?}", r.phase), |why| format!("{:?} ({why})", r.phase)),
                    r.objective.map_or(String::new(), number),
                ];
                row.extend(metrics.iter().map(|m| r.metrics.get(m).map_or(String::new(), |v| number(*v))));
                row.extend(params.iter().map(|p| match r.parameters.get(p) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) if n.is_f64() => number(n.as_f64().unwrap_or_default()),
                    Some(v) => v.to_string(),
                    None => String::new(),
                }));
                row.push(r.duration_seconds.map_or(String::new(), |s| format!("{s:.1}")));
                row
            })
            .collect();
        (header, rows)
    }

    /// An aligned text table.
    pub fn table(&self, experiment: &Experiment) -> String {
        let (header, rows) = self.columns(experiment, number);
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
        out
    }

    /// RFC 4180 CSV with the same columns as the table, numbers in full precision.
    pub fn csv(&self, experiment: &Experiment) -> String {
        let (header, rows) = self.columns(experiment, exact);
        let escape = |c: &String| {
            if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
        };
        std::iter::once(header).chain(rows).map(|r| r.iter().map(escape).collect::<Vec<_>>().join(",") + "\n").collect()
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
        crate::spec::parse(&format!(
            "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: e}}\nspec:\n  objective: {{metric: acc, goal: {goal}, additionalMetrics: [loss]}}\n  parameters: [{{name: x, type: int, min: 0, max: 9}}]\n  trial: {{command: [\"true\"]}}\n"
        ))
        .unwrap()
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
    fn table_and_csv_have_a_column_per_metric_and_parameter() {
        let exp = experiment("maximize");
        let mut t = trial(0, TrialPhase::Succeeded, Some(0.5));
        t.metrics.insert("loss".into(), 0.25);
        let board = rank(&exp, &[t], None, Timestamp::UNIX_EPOCH);
        let csv = board.csv(&exp);
        assert_eq!(csv, "rank,trial,phase,acc,loss,x,seconds\n1,e-0000,Succeeded,0.5,0.25,0,\n");
        assert!(board.table(&exp).starts_with("rank  trial   phase      acc  loss  x  seconds\n1     e-0000"));
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
