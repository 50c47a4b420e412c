//! Durations typed by people: `90s`, `30m`, `2h`, `7d`, `1h 30m`, `500ms`, or a plain number of
//! seconds. One parser (humantime's grammar plus bare seconds) for every place that reads one:
//! the CLI's timeouts and intervals and the API's lease lifetimes.

use std::time::Duration;

/// Why a text is not a duration; `field` names what was being read (`ttl`, `--job-timeout`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DurationError {
    pub field: String,
    pub reason: DurationReason,
}

/// What is wrong with the text, without the field's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationReason {
    #[error("{text:?} is not a duration like 90s, 30m, 2h, 7d or a number of seconds ({source})")]
    Syntax {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("{text:?} is too long to be a duration")]
    Overflow { text: String },
    #[error("must be longer than 0s")]
    Zero,
}

/// Reads `text` as a duration: a number of seconds (`650`), or humantime's units (`ms`, `s`,
/// `m`, `h`, `d`, `w`, …), combined as in `1h 30m`. Zero is allowed.
pub fn duration_parse(field: &str, text: &str) -> Result<Duration, DurationError> {
    let error = |reason| DurationError { field: field.to_owned(), reason };
    // Show at most a short prefix of a bad value: it may be long or hostile.
    let shown = || text.chars().take(80).collect::<String>();
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| error(DurationReason::Overflow { text: shown() }));
    }
    humantime::parse_duration(trimmed).map_err(|source| match source {
        humantime::DurationError::NumberOverflow => error(DurationReason::Overflow { text: shown() }),
        source => error(DurationReason::Syntax { text: shown(), source }),
    })
}

/// [`duration_parse`], refusing zero.
pub fn duration_parse_positive(field: &str, text: &str) -> Result<Duration, DurationError> {
    match duration_parse(field, text)? {
        d if d.is_zero() => Err(DurationError { field: field.to_owned(), reason: DurationReason::Zero }),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds_parse() {
        let s = |n| Ok(Duration::from_secs(n));
        assert_eq!(duration_parse("t", "30s"), s(30));
        assert_eq!(duration_parse("t", "2m"), s(120));
        assert_eq!(duration_parse("t", "2h"), s(7200));
        assert_eq!(duration_parse("t", "7d"), s(7 * 86400));
        assert_eq!(duration_parse("t", "1h 30m"), s(5400));
        assert_eq!(duration_parse("t", "650"), s(650));
        assert_eq!(duration_parse("t", "000650s"), s(650));
        assert_eq!(duration_parse("t", "500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration_parse("t", "0"), Ok(Duration::ZERO));
        assert_eq!(duration_parse("t", "0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn overflow_is_an_error_naming_the_field() {
        for text in ["99999999999999999999", "99999999999999999999d", "213503982334602d", "18446744073709551615s 1s"] {
            let e = duration_parse("ttl", text).unwrap_err();
            assert_eq!(e.field, "ttl");
            assert!(matches!(e.reason, DurationReason::Overflow { .. }), "{text}: {e}");
            assert!(e.to_string().starts_with("ttl: "), "{e}");
            assert!(e.to_string().contains("too long"), "{e}");
        }
    }

    #[test]
    fn zero_is_refused_where_a_positive_duration_is_needed() {
        for text in ["0", "0s", "0h 0m"] {
            let e = duration_parse_positive("--job-timeout", text).unwrap_err();
            assert_eq!(e.to_string(), "--job-timeout: must be longer than 0s");
        }
        assert_eq!(duration_parse_positive("t", "1s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        for text in ["", " ", "soon", "5 parsecs", "-1s", "1.s", "30s!", "\u{0}"] {
            let e = duration_parse("ttl", text).unwrap_err();
            assert!(matches!(e.reason, DurationReason::Syntax { .. }), "{text:?}: {e}");
            assert!(e.to_string().contains("is not a duration like 90s"), "{e}");
        }
    }
}
