//! Durations as users write them (`trial.timeout`), read by jiff: its friendly format (`90s`,
//! `10m`, `1h30m`, `2d`, `1 hour 30 minutes`), ISO 8601 (`PT1H30M`), or a bare number of seconds.
//! Reading never panics: a value too large for a duration, or longer than [`MAX_DURATION`], is an
//! error that says so.

use std::time::Duration;

/// The longest duration a spec may give: 30 days. A trial that should run longer is better run
/// without a timeout; the cap keeps every deadline a representable instant.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a text is not a duration tuna accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration; {FORMS}")]
    Unreadable(String),
    #[error("{0:?} must be longer than zero; {FORMS}")]
    NotPositive(String),
    #[error("{0:?} is longer than 30 days, the longest timeout tuna accepts; shorten it or remove the timeout")]
    TooLong(String),
}

/// The accepted forms, as every error message lists them.
const FORMS: &str = "write it like 90s, 10m, 1h30m, 2d, \"1 hour 30 minutes\", PT1H30M (ISO 8601) or a \
                     number of seconds";

pub type Result<T, E = DurationError> = std::result::Result<T, E>;

/// Reads a duration in any of the accepted forms, bounded by [`MAX_DURATION`].
pub fn read_duration(text: &str) -> Result<Duration> {
    let trimmed = text.trim();
    let unreadable = || DurationError::Unreadable(text.to_string());
    let seconds = match trimmed.parse::<f64>() {
        Ok(secs) if secs.is_nan() => return Err(unreadable()),
        Ok(secs) => secs,
        Err(_) => match span_seconds(trimmed) {
            Some(secs) => secs,
            // jiff refuses a count beyond its unit's range (more than 7 million days, …).
            None if leading_count(trimmed) >= 1e7 => return Err(DurationError::TooLong(text.to_string())),
            None => return Err(unreadable()),
        },
    };
    if seconds <= 0.0 {
        return Err(DurationError::NotPositive(text.to_string()));
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| unreadable())
}

/// Reads a duration, `None` when it is not one tuna accepts (see [`read_duration`] for why).
pub fn parse_duration(text: &str) -> Option<Duration> {
    read_duration(text).ok()
}

/// The number a duration starts with (`999d` → 999), 0 when it starts with none.
fn leading_count(text: &str) -> f64 {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text[..end].parse().unwrap_or(0.0)
}

/// The seconds of a jiff span (friendly or ISO 8601); days count 24 hours, and months and years
/// (of no fixed length) are not accepted.
fn span_seconds(text: &str) -> Option<f64> {
    let span: jiff::Span = text.parse().ok()?;
    let duration = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok()?;
    Some(duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_friendly_and_iso_forms_and_as_seconds() {
        assert_eq!(read_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(read_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(read_duration("1 hour 30 minutes"), Ok(Duration::from_secs(5400)));
        assert_eq!(read_duration("PT1H30M"), Ok(Duration::from_secs(5400)));
        assert_eq!(read_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(read_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(read_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(read_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn huge_negative_and_odd_durations_are_errors_not_panics() {
        for text in ["1e30", "999999999999999999999d", "31d", "inf", "1e308", "720h1s", "9999999999999999999s"] {
            assert_eq!(read_duration(text), Err(DurationError::TooLong(text.into())), "{text}");
        }
        for text in ["0s", "0", "-5m", "-1"] {
            assert_eq!(read_duration(text), Err(DurationError::NotPositive(text.into())), "{text}");
        }
        for text in ["soon", "", "nan", "1 month", "1y", "10 parsecs", "1h30", "--1s"] {
            assert!(
                matches!(read_duration(text), Err(DurationError::Unreadable(_))),
                "{text}: {:?}",
                read_duration(text)
            );
        }
        assert_eq!(read_duration("30d"), Ok(MAX_DURATION), "the bound itself is accepted");
    }

    #[test]
    fn the_error_lists_the_accepted_forms() {
        let message = read_duration("soon").unwrap_err().to_string();
        assert!(message.contains("\"soon\" is not a duration; write it like 90s, 10m, 1h30m"), "{message}");
    }
}
