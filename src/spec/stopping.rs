//! `spec.earlyStopping`: which rule stops losing trials early, and its settings, read and checked
//! in one place (the validator reports every problem; the rules get typed settings with the
//! defaults filled in).
//!
//! ```text
//! {rule: asha, settings: {minResource: 1, reductionFactor: 3}} ──settings()──▶ Ok(Some(Asha{…})) | Err(problems)
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Problem;

/// Katib's medianstop default: the median is taken once this many trials completed.
pub const DEFAULT_MIN_TRIALS_REQUIRED: u32 = 3;
/// Katib's medianstop default: no trial is stopped before this step (early steps are noise).
pub const DEFAULT_START_STEP: i64 = 4;
/// Li et al. 2020 and Ray Tune: keep the top third of each rung.
pub const DEFAULT_REDUCTION_FACTOR: u32 = 3;
/// The largest step a setting may name: far beyond any training run, and exact as a double.
const MAX_STEP: i64 = 1 << 40;

/// Early stopping of trials that are clearly losing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStopping {
    /// `none` (the default), `median` or `asha`.
    #[serde(default)]
    pub rule: StoppingRule,
    /// The rule's settings; unknown keys are errors (median: minTrialsRequired, startStep; asha:
    /// minResource, reductionFactor, maxResource, gracePeriod).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "super::free_form_object")]
    pub settings: BTreeMap<String, Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoppingRule {
    #[default]
    None,
    /// Stop a trial whose best value so far is worse than the median of the completed trials'
    /// running averages at the same step.
    Median,
    /// Asynchronous successive halving: past each rung only the top 1/eta go on.
    Asha,
}

impl StoppingRule {
    pub fn as_str(self) -> &'static str {
        match self {
            StoppingRule::None => "none",
            StoppingRule::Median => "median",
            StoppingRule::Asha => "asha",
        }
    }

    /// The keys `settings` may hold under this rule.
    pub fn settings(self) -> &'static [&'static str] {
        match self {
            StoppingRule::None => &[],
            StoppingRule::Median => &["minTrialsRequired", "startStep"],
            StoppingRule::Asha => &["minResource", "reductionFactor", "maxResource", "gracePeriod", "brackets"],
        }
    }
}

/// The settings in force, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoppingSettings {
    Median {
        /// Completed trials that must have reported by a step before anything is stopped at it.
        min_trials_required: u32,
        /// No trial is stopped at a step below this one.
        start_step: i64,
    },
    Asha {
        /// The first rung (steps); rungs are minResource·eta^k.
        min_resource: i64,
        /// eta: the fraction 1/eta of a rung goes on.
        reduction_factor: u32,
        /// Rungs stop below this step (a trial that reaches it has its full budget); none: the
        /// trial's own last step ends the rungs.
        max_resource: Option<i64>,
        /// No trial is stopped at a step below this one (default: minResource).
        grace_period: i64,
        /// Brackets (default 1, as Ray Tune's ASHA): trial i runs in bracket `i mod brackets`,
        /// whose first rung is `minResource·eta^bracket`; a trial is compared with its bracket's
        /// trials only. Later brackets stop later: a hedge for curves whose early leaders fade.
        brackets: u32,
    },
}

impl EarlyStopping {
    /// The typed settings (`None` for rule none), or every problem with them, each at its field.
    pub fn read(&self) -> Result<Option<StoppingSettings>, Vec<Problem>> {
        let mut problems = Vec::new();
        let known = self.rule.settings();
        for key in self.settings.keys().filter(|k| !known.contains(&k.as_str())) {
            let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            let near = super::words::closest(key, known).map(|n| format!("; did you mean {n}?")).unwrap_or_default();
            problems.push(Problem::new(
                format!("spec.earlyStopping.settings.{key}"),
                format!("is not a setting of rule {} (known settings: {list}){near}", self.rule.as_str()),
            ));
        }
        let mut whole = |key: &str, min: i64, max: i64| -> Option<i64> {
            let value = self.settings.get(key)?;
            let n = value.as_f64().filter(|n| n.fract() == 0.0 && *n >= min as f64 && *n <= max as f64);
            if n.is_none() {
                problems.push(Problem::new(
                    format!("spec.earlyStopping.settings.{key}"),
                    format!("({value}) must be a whole number from {min} to {max}"),
                ));
            }
            n.map(|n| n as i64)
        };
        let settings = match self.rule {
            StoppingRule::None => None,
            StoppingRule::Median => Some(StoppingSettings::Median {
                min_trials_required: whole("minTrialsRequired", 1, 1_000_000)
                    .map_or(DEFAULT_MIN_TRIALS_REQUIRED, |n| n as u32),
                start_step: whole("startStep", 0, MAX_STEP).unwrap_or(DEFAULT_START_STEP),
            }),
            StoppingRule::Asha => {
                let min_resource = whole("minResource", 1, MAX_STEP).unwrap_or(1);
                let reduction_factor = whole("reductionFactor", 2, 1000).map_or(DEFAULT_REDUCTION_FACTOR, |n| n as u32);
                let max_resource = whole("maxResource", 1, MAX_STEP);
                let grace_period = whole("gracePeriod", 0, MAX_STEP).unwrap_or(min_resource);
                let brackets = whole("brackets", 1, 16).map_or(1, |n| n as u32);
                if let Some(max) = max_resource.filter(|max| *max <= min_resource) {
                    problems.push(Problem::new(
                        "spec.earlyStopping.settings.maxResource",
                        format!("({max}) must be larger than minResource ({min_resource}); raise it or remove it"),
                    ));
                }
                let last_first_rung =
                    min_resource.saturating_mul(i64::from(reduction_factor).saturating_pow(brackets.saturating_sub(1)));
                if let Some(max) = max_resource.filter(|max| brackets > 1 && last_first_rung >= *max) {
                    problems.push(Problem::new(
                        "spec.earlyStopping.settings.brackets",
                        format!(
                            "({brackets}): the last bracket's first rung, minResource·reductionFactor^{} = \
                             {last_first_rung}, is not below maxResource ({max}), so it would stop nothing; \
                             use fewer brackets or raise maxResource",
                            brackets - 1
                        ),
                    ));
                }
                Some(StoppingSettings::Asha { min_resource, reduction_factor, max_resource, grace_period, brackets })
            }
        };
        if problems.is_empty() { Ok(settings) } else { Err(problems) }
    }
}
