//! What a trial's outcome means to the person reading it: why it did not succeed, in one line, and
//! whether the value it is ranked by is that of the model it saved.
//!
//! ```text
//! reason "NonZeroExit" + message "exit code 2; stderr ends with:\n…\ntrain.py: error: …"
//!   ─▶ "NonZeroExit: exit code 2: train.py: error: …"
//! objective_step 1, last_step 21 ─▶ "note: loss 0.011416 was reported at step 1 of 21; …"
//! ```

use crate::trial::{Trial, TrialPhase};

/// The most characters a cause keeps: it shares one terminal line with a trial's name and phase.
const CAUSE_CHARS: usize = 120;

/// Why `trial` did not succeed, in one line: its reason, its message's first line and, when the
/// message goes on with lines of stderr, the last non-empty one (`NonZeroExit: exit code 2:
/// train.py: error: unrecognized arguments: --learning-rate`), cut to [`CAUSE_CHARS`]. `None` for a
/// succeeded trial, or one with neither reason nor message.
pub fn cause(trial: &Trial) -> Option<String> {
    one_line(trial.phase, trial.reason.as_ref().map(|r| r.as_str()), trial.message.as_deref())
}

/// [`cause`] from a trial's phase, reason and message (a trial's, or a leaderboard row's).
pub(super) fn one_line(phase: TrialPhase, reason: Option<&str>, message: Option<&str>) -> Option<String> {
    if phase == TrialPhase::Succeeded {
        return None;
    }
    let mut lines = message.unwrap_or_default().lines().map(printable);
    let head = lines.next().unwrap_or_default();
    let last = lines.rfind(|l| !l.is_empty());
    let head = if last.is_some() { without_announcement(&head) } else { head.as_str() };
    let reason = reason.map(printable).unwrap_or_default();
    let parts: Vec<&str> =
        [reason.as_str(), head, last.as_deref().unwrap_or_default()].into_iter().filter(|p| !p.is_empty()).collect();
    (!parts.is_empty()).then(|| cut(&parts.join(": ")))
}

/// A line as a terminal would show it on one line: control characters (tabs, carriage returns,
/// escapes) become spaces, and the ends are trimmed.
fn printable(line: &str) -> String {
    line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// `exit code 2; stderr ends with:` → `exit code 2`: the clause that announces the lines below
/// goes, since the last of them follows.
fn without_announcement(head: &str) -> &str {
    match head.strip_suffix(':') {
        Some(h) => h.rsplit_once("; ").map_or(h, |(before, _)| before).trim_end(),
        None => head,
    }
}

/// At most [`CAUSE_CHARS`] characters, the last an ellipsis when something was cut.
fn cut(line: &str) -> String {
    if line.chars().count() <= CAUSE_CHARS {
        return line.to_string();
    }
    line.chars().take(CAUSE_CHARS - 1).chain(std::iter::once('…')).collect()
}

/// `(step, last)` when the ranked value came at an earlier step than the last one reported.
pub(super) fn early_step(step: Option<i64>, last: Option<i64>) -> Option<(i64, i64)> {
    match (step, last) {
        (Some(step), Some(last)) if step < last => Some((step, last)),
        _ => None,
    }
}

/// For a trial ranked by a value from before its last step (`strategy: min`/`max`), a sentence
/// saying so: `note: loss 0.011416 was reported at step 1 of 21; its saved model is step 21's
/// unless its trainer keeps the best step's checkpoint`. `None` when the value is the last step's.
pub fn step_note(trial: &Trial, metric: &str) -> Option<String> {
    if !trial.ranked_before_end() {
        return None;
    }
    let (step, last) = early_step(trial.objective_step, trial.last_step)?;
    let value = trial.objective.map_or_else(|| "its value".to_string(), super::number);
    Some(format!(
        "note: {metric} {value} was reported at step {step} of {last}; its saved model is step {last}'s \
         unless its trainer keeps the best step's checkpoint"
    ))
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::space::Assignment;

    fn ended(phase: TrialPhase, reason: Option<&str>, message: Option<&str>) -> Trial {
        let mut t = Trial::new("e", 0, Assignment::new(), Timestamp::UNIX_EPOCH);
        t.phase = phase;
        t.reason = reason.map(crate::trial::TrialReason::from);
        t.message = message.map(str::to_string);
        t
    }

    #[test]
    fn a_non_zero_exit_names_its_code_and_the_last_line_of_stderr() {
        let message = "exit code 2; stderr ends with:\nusage: train.py [-h] [--lr LR]\n\
                       train.py: error: unrecognized arguments: --learning-rate\n\n";
        let t = ended(TrialPhase::Failed, Some("NonZeroExit"), Some(message));
        assert_eq!(
            cause(&t).as_deref(),
            Some("NonZeroExit: exit code 2: train.py: error: unrecognized arguments: --learning-rate")
        );
    }

    #[test]
    fn a_one_line_message_follows_its_reason_as_it_is() {
        let t = ended(TrialPhase::Failed, Some("TimedOut"), Some("ran longer than spec.trial.timeout (1s)"));
        assert_eq!(cause(&t).as_deref(), Some("TimedOut: ran longer than spec.trial.timeout (1s)"));
        let t = ended(TrialPhase::Failed, Some("Killed"), Some("killed by signal 9"));
        assert_eq!(cause(&t).as_deref(), Some("Killed: killed by signal 9"));
    }

    #[test]
    fn a_reason_alone_or_a_message_alone_is_the_whole_cause() {
        assert_eq!(cause(&ended(TrialPhase::Stopped, Some("StoppedByUser"), None)).as_deref(), Some("StoppedByUser"));
        let t = ended(TrialPhase::Failed, None, Some("no such file: train.py"));
        assert_eq!(cause(&t).as_deref(), Some("no such file: train.py"));
        assert_eq!(cause(&ended(TrialPhase::Stopped, None, None)), None);
    }

    #[test]
    fn a_succeeded_trial_has_no_cause() {
        assert_eq!(cause(&ended(TrialPhase::Succeeded, Some("NonZeroExit"), Some("exit code 0"))), None);
    }

    #[test]
    fn a_long_stderr_line_is_cut_with_an_ellipsis_and_control_characters_become_spaces() {
        let long = format!("exit code 1; stderr ends with:\n\x1b[31mValueError:\t{}\r", "x".repeat(500));
        let line = cause(&ended(TrialPhase::Failed, Some("NonZeroExit"), Some(&long))).unwrap();
        assert_eq!(line.chars().count(), CAUSE_CHARS);
        assert!(line.starts_with("NonZeroExit: exit code 1: [31mValueError: xxx"), "{line}");
        assert!(line.ends_with('…'));
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn a_first_line_that_announces_nothing_keeps_its_words() {
        let t = ended(TrialPhase::Failed, Some("NonZeroExit"), Some("exit code 3\n\nboom\n"));
        assert_eq!(cause(&t).as_deref(), Some("NonZeroExit: exit code 3: boom"));
        let t = ended(TrialPhase::Failed, Some("NonZeroExit"), Some("exit code 3; stderr ends with:\n  \n"));
        assert_eq!(cause(&t).as_deref(), Some("NonZeroExit: exit code 3; stderr ends with:"), "no tail line");
    }

    fn ranked(objective: f64, step: Option<i64>, last: Option<i64>) -> Trial {
        let mut t = ended(TrialPhase::Succeeded, None, None);
        (t.objective, t.objective_step, t.last_step) = (Some(objective), step, last);
        t
    }

    #[test]
    fn a_value_from_before_the_last_step_gets_a_note_naming_both_steps() {
        let note = step_note(&ranked(0.0114159265, Some(1), Some(21)), "loss").unwrap();
        assert_eq!(
            note,
            "note: loss 0.0114159 was reported at step 1 of 21; its saved model is step 21's \
             unless its trainer keeps the best step's checkpoint"
        );
    }

    #[test]
    fn a_value_from_the_last_step_or_without_steps_gets_no_note() {
        assert_eq!(step_note(&ranked(0.5, Some(21), Some(21)), "loss"), None);
        assert_eq!(step_note(&ranked(0.5, None, None), "loss"), None);
        assert_eq!(step_note(&ranked(0.5, None, Some(3)), "loss"), None);
        assert_eq!(early_step(Some(2), Some(3)), Some((2, 3)));
        assert_eq!(early_step(Some(3), Some(3)), None);
    }
}
