//! Reading metrics from what a trial prints, and reading a trial's objective from its reports.
//!
//! ```text
//! "epoch=3 loss=0.21 accuracy=0.95"      ─┐
//! {"epoch": 3, "loss": 0.21, "acc": 0.95} ─┴▶ Report { step: 3, values: [(loss, 0.21), …] } ─▶ Tally
//! ```
//! A line may use Katib's `name=value` pairs (or the spec's own `format`) or be one JSON object. The
//! `step` or `epoch` key, when present, is the step of the line's other values; it is not a metric.

use std::collections::BTreeMap;

use regex::Regex;

use crate::spec::{DEFAULT_METRIC_FORMAT, Strategy};
use crate::trial::Observation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metrics format is not a valid regular expression")]
    CompileFormat(#[source] regex::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Keys that give a line's step instead of being metrics.
const STEP_KEYS: &[&str] = &["step", "epoch"];

/// The values one line reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub step: Option<i64>,
    pub values: Vec<(String, f64)>,
}

/// Parses metric lines with the experiment's format.
#[derive(Clone, Debug)]
pub struct MetricParser {
    format: Regex,
}

impl MetricParser {
    /// A parser for `format` (a regex whose groups 1 and 2 are name and value), or Katib's default.
    pub fn new(format: Option<&str>) -> Result<Self> {
        let format = Regex::new(format.unwrap_or(DEFAULT_METRIC_FORMAT)).map_err(Error::CompileFormat)?;
        Ok(Self { format })
    }

    /// The metrics on one line; `None` for a line that reports none.
    pub fn parse_line(&self, line: &str) -> Option<Report> {
        let line = line.trim();
        let pairs = if line.starts_with('{') { json_pairs(line) } else { self.text_pairs(line) };
        let mut report = Report { step: None, values: Vec::new() };
        for (name, value) in pairs {
            if STEP_KEYS.contains(&name.as_str()) && value.fract() == 0.0 {
                report.step.get_or_insert(value as i64);
            } else {
                report.values.push((name, value));
            }
        }
        (!report.values.is_empty()).then_some(report)
    }

    fn text_pairs(&self, line: &str) -> Vec<(String, f64)> {
        self.format
            .captures_iter(line)
            .filter_map(|c| {
                let name = c.get(1)?.as_str().to_string();
                let value: f64 = c.get(2)?.as_str().parse().ok()?;
                value.is_finite().then_some((name, value))
            })
            .collect()
    }
}

fn json_pairs(line: &str) -> Vec<(String, f64)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let value = match &v {
                serde_json::Value::Number(n) => n.as_f64()?,
                serde_json::Value::String(s) => s.parse().ok()?,
                _ => return None,
            };
            value.is_finite().then_some((k, value))
        })
        .collect()
}

/// What a trial has reported so far, per metric: its latest, largest and smallest value, and the
/// steps they came at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    metrics: BTreeMap<String, Summary>,
    /// The highest step any report carried.
    last_step: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Summary {
    latest: f64,
    max: f64,
    min: f64,
    /// The steps of the latest, largest and smallest value (the first of equal extremes).
    latest_step: Option<i64>,
    max_step: Option<i64>,
    min_step: Option<i64>,
}

impl Tally {
    /// Everything one attempt of a trial reported (output lines and pushes alike).
    pub fn of_attempt(observations: &[Observation], attempt: u32) -> Self {
        let mut tally = Tally::default();
        for o in observations.iter().filter(|o| o.attempt == attempt) {
            tally.add_at(&o.metric, o.value, o.step);
        }
        tally
    }

    pub fn add(&mut self, name: &str, value: f64) {
        self.add_at(name, value, None);
    }

    /// Adds a value reported at `step` (when the report had one).
    pub fn add_at(&mut self, name: &str, value: f64, step: Option<i64>) {
        if step > self.last_step {
            self.last_step = step;
        }
        self.metrics
            .entry(name.to_string())
            .and_modify(|s| {
                s.latest = value;
                s.latest_step = step;
                if value > s.max {
                    (s.max, s.max_step) = (value, step);
                }
                if value < s.min {
                    (s.min, s.min_step) = (value, step);
                }
            })
            .or_insert(Summary {
                latest: value,
                max: value,
                min: value,
                latest_step: step,
                max_step: step,
                min_step: step,
            });
    }

    /// The step at which the value `value(metric, strategy)` was reported, when it had one.
    pub fn step_of(&self, metric: &str, strategy: Strategy) -> Option<i64> {
        let s = self.metrics.get(metric)?;
        match strategy {
            Strategy::Max => s.max_step,
            Strategy::Min => s.min_step,
            Strategy::Latest => s.latest_step,
        }
    }

    /// The highest step reported, by any metric.
    pub fn last_step(&self) -> Option<i64> {
        self.last_step
    }

    /// The value of `metric` read with `strategy`; `None` when it was never reported.
    pub fn value(&self, metric: &str, strategy: Strategy) -> Option<f64> {
        let s = self.metrics.get(metric)?;
        Some(match strategy {
            Strategy::Max => s.max,
            Strategy::Min => s.min,
            Strategy::Latest => s.latest,
        })
    }

    /// The names of the metrics reported, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.metrics.keys().map(String::as_str)
    }

    /// The latest value of every metric.
    pub fn latest(&self) -> BTreeMap<String, f64> {
        self.metrics.iter().map(|(k, s)| (k.clone(), s.latest)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> MetricParser {
        MetricParser::new(None).unwrap()
    }

    #[test]
    fn katib_format_reads_every_pair_and_takes_epoch_as_step() {
        let r = parser().parse_line("epoch=3 loss=0.21 accuracy=9.5e-1").unwrap();
        assert_eq!(r.step, Some(3));
        assert_eq!(r.values, vec![("loss".into(), 0.21), ("accuracy".into(), 0.95)]);
        let r = parser().parse_line("Validation-accuracy = -1.5").unwrap();
        assert_eq!(r.values, vec![("Validation-accuracy".into(), -1.5)]);
    }

    #[test]
    fn json_lines_give_numbers_and_numeric_strings_and_skip_the_rest() {
        let r = parser().parse_line(r#"{"step": 7, "loss": 0.5, "acc": "0.75", "tag": "x", "ok": true}"#).unwrap();
        assert_eq!(r.step, Some(7));
        assert_eq!(r.values, vec![("acc".into(), 0.75), ("loss".into(), 0.5)]);
    }

    #[test]
    fn junk_lines_report_nothing() {
        for line in ["", "Traceback (most recent call last):", "{not json", "loading data...", "x = ", "{\"a\": null}"]
        {
            assert_eq!(parser().parse_line(line), None, "{line:?}");
        }
        assert_eq!(parser().parse_line("epoch=2"), None, "a step alone is no report");
    }

    #[test]
    fn a_custom_format_uses_its_first_two_groups() {
        let p = MetricParser::new(Some(r"(\w+):\s*([-\d.]+)")).unwrap();
        assert_eq!(p.parse_line("acc: 0.5, loss: 2").unwrap().values, vec![("acc".into(), 0.5), ("loss".into(), 2.0)]);
        assert!(MetricParser::new(Some("(unclosed")).is_err());
    }

    #[test]
    fn tally_reads_the_objective_by_strategy() {
        let mut t = Tally::default();
        for v in [0.5, 0.9, 0.7] {
            t.add("acc", v);
        }
        assert_eq!(t.value("acc", Strategy::Max), Some(0.9));
        assert_eq!(t.value("acc", Strategy::Min), Some(0.5));
        assert_eq!(t.value("acc", Strategy::Latest), Some(0.7));
        assert_eq!(t.value("loss", Strategy::Max), None);
        assert_eq!(t.latest()["acc"], 0.7);
    }

    #[test]
    fn tally_knows_the_step_of_the_value_it_ranks_and_the_last_step() {
        let mut t = Tally::default();
        for (step, v) in [(1, 0.3), (2, 0.1), (3, 0.2), (4, 0.1)] {
            t.add_at("loss", v, Some(step));
        }
        assert_eq!(t.step_of("loss", Strategy::Min), Some(2), "the first of equal minima");
        assert_eq!(t.step_of("loss", Strategy::Max), Some(1));
        assert_eq!(t.step_of("loss", Strategy::Latest), Some(4));
        assert_eq!(t.last_step(), Some(4));
        assert_eq!(t.step_of("acc", Strategy::Min), None);
    }
}
