//! The words of the validator's messages: what a value is (`the boolean false`, `the text "lots"`),
//! the nearest known name ("did you mean"), and the bounds of every whole-number field.

use serde_json::Value;

/// The bounds of each whole-number field, tighter than its type's, each with its reason. A field
/// not listed here is bounded by its type (`format: uint32` …).
const WHOLE_BOUNDS: &[(&str, i128, i128)] = &[
    // One experiment's budget: more trials than this is a different kind of study.
    ("spec.maxTrials", 1, 1_000_000),
    // Trials running at once on one machine or one cluster's quota.
    ("spec.parallelTrials", 1, 10_000),
    ("spec.maxFailedTrials", 0, 1_000_000),
    // Re-runs of one trial: beyond this, the cause is not transient.
    ("spec.trial.retries", 0, 100),
    // The most GPUs one machine or node holds.
    ("spec.trial.resources.gpu", 0, 64),
    // A year: Kubernetes keeps the finished Job at most this long.
    ("spec.trial.ttlSecondsAfterFinished", 0, 31_536_000),
    // Port 0 would ask the system for any port; clients need to know it.
    ("spec.promotion.serve.port", 1, 65_535),
    ("spec.promotion.serve.replicas", 0, 1_000),
    ("spec.promotion.serve.autoscale.minReplicas", 1, 1_000),
    ("spec.promotion.serve.autoscale.maxReplicas", 1, 1_000),
    // A percentage of the requested CPU.
    ("spec.promotion.serve.autoscale.targetCpuUtilization", 1, 100),
];

/// The smallest and largest value a whole-number field takes.
pub fn whole_range(schema: &Value, path: &str) -> (i128, i128) {
    if let Some((_, min, max)) = WHOLE_BOUNDS.iter().find(|(field, ..)| *field == path) {
        return (*min, *max);
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("uint16") => (0, i128::from(u16::MAX)),
        Some("uint32") => (0, i128::from(u32::MAX)),
        Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
        Some("uint64") => (0, i128::from(u64::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    }
}

/// A value as a user would name it: `the number 1.5`, `the text "lots"`, `a list`.
pub fn a_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => format!("the text {:?}…", s.chars().take(40).collect::<String>()),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The known name nearest to `word`, when it is near enough to be a typo: the same letters in
/// another case, its start (3 letters or more), or an edit distance of at most a third of the word's length (at least 1).
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let allowed = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| {
            let k_lower = k.to_lowercase();
            let d = match () {
                () if k_lower == lower => 0,
                // A shortened name (`bayes` for `bayesian`).
                () if lower.chars().count() >= 3 && k_lower.starts_with(&lower) => 1,
                () => distance(&lower, &k_lower),
            };
            (k, d)
        })
        .filter(|(_, d)| *d <= allowed)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| *k)
}

/// The Levenshtein distance between two words (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let known = ["trial", "maxTrials", "parallelTrials", "objective"];
        assert_eq!(closest("trials", &known), Some("trial"));
        assert_eq!(closest("maxtrials", &known), Some("maxTrials"));
        assert_eq!(closest("max_trials", &known), Some("maxTrials"));
        assert_eq!(closest("objectve", &known), Some("objective"));
        assert_eq!(closest("banana", &known), None);
        assert_eq!(closest("bayes", &["random", "grid", "bayesian"]), Some("bayesian"));
        assert_eq!(closest("", &known), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
