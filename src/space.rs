//! The search space built from the parameter specs, and the assignments drawn from it.
//!
//! Every dimension maps to `[0, 1]` (`to_unit` / `from_unit`) so search algorithms work on the unit
//! cube and never see types:
//! ```text
//! double      linear or log, continuous;        with a step: uniform over its levels
//! int         [min - step/2, max + step/2] in linear or log space, rounded to a level
//! discrete    ordered values, one equal bin each
//! categorical one equal bin each (order carries no meaning; Bayesian search one-hots it)
//! ```
//! Finite spaces (no continuous double) also enumerate as a grid in a fixed order: the last
//! parameter varies fastest.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::spec::{ParameterSpec, ParameterType, Scalar, Scale};

/// One parameter's value in a trial: a JSON integer, number or string.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Text(String),
}

/// By the JSON type, directly: `#[serde(untagged)]` would try each variant in turn and build an
/// error for each miss, which made reading an experiment's trials several times slower.
impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<ParamValue, E> {
                Ok(ParamValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ParamValue, E> {
                Ok(i64::try_from(v).map_or(ParamValue::Float(v as f64), ParamValue::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ParamValue, E> {
                Ok(ParamValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<ParamValue, E> {
                Ok(ParamValue::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<ParamValue, E> {
                Ok(ParamValue::Text(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Text(v) => f.write_str(v),
        }
    }
}

/// A full set of parameter values, by name.
pub type Assignment = BTreeMap<String, ParamValue>;

/// A canonical text form of an assignment, equal for equal assignments (used to find repeats).
pub fn assignment_key(assignment: &Assignment) -> String {
    serde_json::to_string(assignment).unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    Double {
        min: f64,
        max: f64,
        log: bool,
        step: Option<f64>,
    },
    Int {
        min: i64,
        max: i64,
        step: i64,
        log: bool,
    },
    Categorical {
        values: Vec<String>,
    },
    /// Ordered numbers; `floats` keeps whole values as floats (levels of a double axis).
    Discrete {
        values: Vec<f64>,
        floats: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dim {
    pub name: String,
    pub domain: Domain,
}

/// The search space of an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub dims: Vec<Dim>,
}

impl Space {
    /// Builds the space from validated parameter specs.
    pub fn new(params: &[ParameterSpec]) -> Self {
        Self { dims: params.iter().map(dim).collect() }
    }

    /// The same space with every double that has no step split into `levels` evenly spaced values
    /// (evenly in log space on log scales), so that it enumerates as a grid.
    pub fn with_levels(&self, levels: usize) -> Space {
        let n = levels.max(2);
        let dims = self
            .dims
            .iter()
            .map(|d| match d.domain {
                Domain::Double { min, max, log, step: None } => {
                    let values =
                        (0..n).map(|i| significant(continuous(min, max, log, i as f64 / (n - 1) as f64))).collect();
                    Dim { name: d.name.clone(), domain: Domain::Discrete { values, floats: true } }
                }
                _ => d.clone(),
            })
            .collect();
        Space { dims }
    }

    /// A uniform draw (log-uniform on log scales).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Assignment {
        let unit: Vec<f64> = (0..self.dims.len()).map(|_| rng.random::<f64>()).collect();
        self.from_unit(&unit)
    }

    /// The assignment at a point of the unit cube.
    pub fn from_unit(&self, unit: &[f64]) -> Assignment {
        self.dims.iter().zip(unit).map(|(d, &u)| (d.name.clone(), d.domain.at_unit(u.clamp(0.0, 1.0)))).collect()
    }

    /// The point of the unit cube an assignment sits at; `None` when a value is missing or foreign.
    pub fn to_unit(&self, assignment: &Assignment) -> Option<Vec<f64>> {
        self.dims.iter().map(|d| d.domain.unit_of(assignment.get(&d.name)?)).collect()
    }

    /// How many distinct points there are, when finite (saturating at `u128::MAX`).
    pub fn grid_size(&self) -> Option<u128> {
        self.dims.iter().try_fold(1u128, |acc, d| Some(acc.saturating_mul(d.domain.levels()? as u128)))
    }

    /// The `index`-th point of the grid, last parameter fastest; `None` past the end or when infinite.
    pub fn grid_point(&self, mut index: u128) -> Option<Assignment> {
        if index >= self.grid_size()? {
            return None;
        }
        let mut point = Assignment::new();
        for d in self.dims.iter().rev() {
            let levels = d.domain.levels()? as u128;
            let level = (index % levels) as usize;
            index /= levels;
            point.insert(d.name.clone(), d.domain.level(level));
        }
        Some(point)
    }

    /// Every point not in `seen`, in grid order, when the space is finite and at most `limit` large.
    pub fn unseen_points(&self, seen: &HashSet<String>, limit: u128) -> Option<Vec<Assignment>> {
        let size = self.grid_size().filter(|&s| s <= limit)?;
        Some((0..size).filter_map(|i| self.grid_point(i)).filter(|p| !seen.contains(&assignment_key(p))).collect())
    }
}

fn dim(p: &ParameterSpec) -> Dim {
    let log = p.scale == Scale::Log;
    let (min, max) = (p.min.unwrap_or(0.0), p.max.unwrap_or(1.0));
    let domain = match p.kind {
        ParameterType::Double => Domain::Double { min, max, log, step: p.step },
        ParameterType::Int => {
            Domain::Int { min: min as i64, max: max as i64, step: p.step.map_or(1, |s| (s as i64).max(1)), log }
        }
        ParameterType::Categorical => Domain::Categorical { values: p.values.iter().map(scalar_text).collect() },
        ParameterType::Discrete => {
            let mut values: Vec<f64> =
                p.values.iter().filter_map(|v| if let Scalar::Number(n) = v { Some(*n) } else { None }).collect();
            values.sort_by(f64::total_cmp);
            Domain::Discrete { values, floats: false }
        }
    };
    Dim { name: p.name.clone(), domain }
}

fn scalar_text(value: &Scalar) -> String {
    match value {
        Scalar::Number(n) => number(*n).to_string(),
        Scalar::Text(t) => t.clone(),
    }
}

/// A number as an int when it is whole, so `16` stays `16` in a command line.
fn number(v: f64) -> ParamValue {
    if v.fract() == 0.0 && v.abs() < 1e15 { ParamValue::Int(v as i64) } else { ParamValue::Float(v) }
}

impl Domain {
    /// How many distinct values the dimension has; `None` when continuous.
    pub fn levels(&self) -> Option<usize> {
        match self {
            Domain::Double { min, max, step: Some(step), .. } => {
                Some(steps_between(*min, *max, *step).saturating_add(1))
            }
            Domain::Double { step: None, .. } => None,
            Domain::Int { min, max, step, .. } => {
                Some((max.saturating_sub(*min) / step) as usize).map(|n| n.saturating_add(1))
            }
            Domain::Categorical { values } => Some(values.len()),
            Domain::Discrete { values, .. } => Some(values.len()),
        }
    }

    /// The `i`-th value in order.
    pub fn level(&self, i: usize) -> ParamValue {
        match self {
            Domain::Double { min, step, .. } => {
                ParamValue::Float(round_to_step(*min + i as f64 * step.unwrap_or(0.0), *min, step.unwrap_or(1.0)))
            }
            Domain::Int { min, step, .. } => ParamValue::Int(min + i as i64 * step),
            Domain::Categorical { values } => ParamValue::Text(values[i.min(values.len() - 1)].clone()),
            Domain::Discrete { values, floats: false } => number(values[i.min(values.len() - 1)]),
            Domain::Discrete { values, floats: true } => ParamValue::Float(values[i.min(values.len() - 1)]),
        }
    }

    fn at_unit(&self, u: f64) -> ParamValue {
        match self {
            Domain::Double { min, max, log, step: None } => {
                ParamValue::Float(continuous(*min, *max, *log, u).clamp(*min, *max))
            }
            Domain::Double { min, step: Some(step), log, .. } => {
                let n = self.levels().unwrap_or(1);
                let x = continuous(min - step / 2.0, min + (n as f64 - 0.5) * step, *log && min - step / 2.0 > 0.0, u);
                self.level((((x - min) / step).round().max(0.0) as usize).min(n - 1))
            }
            Domain::Int { min, step, log, .. } => {
                let n = self.levels().unwrap_or(1);
                let (lo, hi) = (*min as f64 - *step as f64 / 2.0, *min as f64 + (n as f64 - 0.5) * *step as f64);
                let x = continuous(lo, hi, *log && lo > 0.0, u);
                self.level((((x - *min as f64) / *step as f64).round().max(0.0) as usize).min(n - 1))
            }
            Domain::Categorical { values } => self.level(bin(u, values.len())),
            Domain::Discrete { values, .. } => self.level(bin(u, values.len())),
        }
    }

    /// The unit coordinate of the value `u` rounds to: `unit_of(at_unit(u))`, without building the
    /// value where that can be avoided (categoricals: the bin centre).
    pub fn snap_unit(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match self {
            Domain::Double { step: None, .. } => u,
            Domain::Categorical { values } => (bin(u, values.len()) as f64 + 0.5) / values.len() as f64,
            _ => self.unit_of(&self.at_unit(u)).unwrap_or(u),
        }
    }

    /// The unit coordinate of a value; `None` when it is not one of this domain's.
    pub fn unit_of(&self, value: &ParamValue) -> Option<f64> {
        let as_f64 = || match value {
            ParamValue::Int(v) => Some(*v as f64),
            ParamValue::Float(v) => Some(*v),
            ParamValue::Text(_) => None,
        };
        let u = match self {
            Domain::Double { min, max, log, step: None } => inverse(*min, *max, *log, as_f64()?),
            Domain::Double { min, step: Some(step), log, .. } => {
                let n = self.levels()? as f64;
                inverse(min - step / 2.0, min + (n - 0.5) * step, *log && min - step / 2.0 > 0.0, as_f64()?)
            }
            Domain::Int { min, step, log, .. } => {
                let n = self.levels()? as f64;
                let (lo, hi) = (*min as f64 - *step as f64 / 2.0, *min as f64 + (n - 0.5) * *step as f64);
                inverse(lo, hi, *log && lo > 0.0, as_f64()?)
            }
            Domain::Categorical { values } => {
                let i = values.iter().position(|v| *v == value.to_string())?;
                (i as f64 + 0.5) / values.len() as f64
            }
            Domain::Discrete { values, .. } => {
                let v = as_f64()?;
                let i = values.iter().position(|x| (x - v).abs() <= 1e-12 * x.abs().max(1.0))?;
                (i as f64 + 0.5) / values.len() as f64
            }
        };
        Some(u.clamp(0.0, 1.0))
    }
}

fn continuous(lo: f64, hi: f64, log: bool, u: f64) -> f64 {
    if log { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) }
}

fn inverse(lo: f64, hi: f64, log: bool, x: f64) -> f64 {
    if log { (x.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (x - lo) / (hi - lo) }
}

/// Rounded to 10 significant digits, so grid values read as written (0.1, not 0.1000000000000001).
fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(9 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn bin(u: f64, n: usize) -> usize {
    ((u * n as f64) as usize).min(n.saturating_sub(1))
}

/// How many whole steps fit between min and max, forgiving floating-point error (0.9/0.1 = 8.999…).
fn steps_between(min: f64, max: f64, step: f64) -> usize {
    ((max - min) / step + 1e-9).floor().max(0.0) as usize
}

/// Rounds `min + k * step` to the decimals that min and step are written with (0.1 * 3 is 0.3).
fn round_to_step(v: f64, min: f64, step: f64) -> f64 {
    let decimals = |x: f64| {
        let s = format!("{x}");
        s.split_once('.').map_or(0, |(_, d)| d.len())
    };
    let places = decimals(min).max(decimals(step)).min(15) as i32;
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

#[cfg(test)]
#[path = "space_tests.rs"]
mod tests;
