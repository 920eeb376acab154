//! Istio's duration strings (`5s`, `100ms`, `1h30m`, `1.5s`), as the Kubernetes CRDs accept them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as Istio writes it: one or more `<number><unit>` parts, units `h`, `m`, `s`, `ms`,
/// `us` (or `µs`) and `ns`, numbers with an optional fraction (`1.5s`). The text is kept as
/// written, so that a resource serializes back unchanged; [`IstioDuration::get`] is its value.
///
/// Parsing guarantees: an empty string, a missing unit (`5`), an unknown unit (`5x`), a sign or
/// a value above 100 years is refused with a message saying what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioDuration {
    text: String,
    value: Duration,
}

/// The longest duration accepted (100 years), far beyond any timeout a user means.
const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl IstioDuration {
    /// Parses Istio's duration syntax.
    pub fn parse(text: &str) -> Result<IstioDuration, String> {
        let bad = || {
            format!(
                "invalid duration \"{text}\": expected a number and a unit (h, m, s, ms, us, ns), \
                 such as \"5s\", \"100ms\" or \"1h30m\""
            )
        };
        let mut rest = text;
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (number, after) = rest.split_at(digits);
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return Err(bad());
            }
            let n: f64 = number.parse().map_err(|_| bad())?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                _ => return Err(bad()),
            };
            total += n * scale;
            rest = next;
        }
        if !total.is_finite() || total > MAX.as_secs_f64() {
            return Err(format!(
                "invalid duration \"{text}\": must be at most 100 years"
            ));
        }
        Ok(IstioDuration {
            text: text.to_string(),
            value: Duration::from_secs_f64(total),
        })
    }

    /// The duration.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for IstioDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IstioDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_durations_parse_and_keep_their_text() {
        let d = |s: &str| IstioDuration::parse(s).map(|d| d.get());
        assert_eq!(d("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(
            IstioDuration::parse("1h30m").map(|d| d.to_string()),
            Ok("1h30m".into())
        );
    }

    #[test]
    fn malformed_durations_say_what_is_allowed() {
        for bad in ["", "5", "5x", "-5s", "s", ".5s", "5.s", "5 s", "1e3s"] {
            let e = IstioDuration::parse(bad).expect_err(bad);
            assert!(e.contains("expected a number and a unit"), "{bad}: {e}");
        }
        assert!(IstioDuration::parse("1000000h")
            .expect_err("too long")
            .contains("at most 100 years"));
    }
}
