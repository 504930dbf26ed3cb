//! ISO-8601 durations (`P70D`, `PT1H`, `P1DT12H`), as policies are written.

use std::fmt;

/// A duration in whole seconds, parsed from and printed as ISO-8601.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDuration(pub i64);

/// A malformed ISO-8601 duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO-8601 duration such as P70D or PT12H")]
pub struct DurationError(pub String);

impl IsoDuration {
    /// Parses `PnW`, `PnD`, `PTnH`, `PTnM`, `PTnS` and their combinations
    /// (years and months are refused: they have no fixed length).
    pub fn parse(raw: &str) -> Result<Self, DurationError> {
        let err = || DurationError(raw.chars().take(64).collect());
        let rest = raw.strip_prefix('P').ok_or_else(err)?;
        if rest.is_empty() {
            return Err(err());
        }
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return Err(err()),
            None => (rest, None),
        };
        let mut total: i64 = 0;
        let mut add = |part: &str, units: &[(char, i64)]| -> Result<(), DurationError> {
            let mut num = String::new();
            let mut last_unit = 0usize;
            for c in part.chars() {
                if c.is_ascii_digit() {
                    num.push(c);
                    continue;
                }
                let pos = units.iter().position(|(u, _)| *u == c).ok_or_else(err)?;
                if num.is_empty() || pos < last_unit {
                    return Err(err());
                }
                last_unit = pos + 1;
                let n: i64 = num.parse().map_err(|_| err())?;
                let secs = n.checked_mul(units[pos].1).ok_or_else(err)?;
                total = total.checked_add(secs).ok_or_else(err)?;
                num.clear();
            }
            if num.is_empty() {
                Ok(())
            } else {
                Err(err())
            }
        };
        add(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
        if let Some(t) = time {
            add(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
        }
        Ok(Self(total))
    }

    /// The duration in seconds.
    pub fn seconds(self) -> i64 {
        self.0
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0;
        let days = s / 86_400;
        s %= 86_400;
        let (h, m, sec) = (s / 3_600, (s % 3_600) / 60, s % 60);
        write!(f, "P")?;
        if days > 0 || self.0 == 0 {
            write!(f, "{days}D")?;
        }
        if h > 0 || m > 0 || sec > 0 {
            write!(f, "T")?;
            if h > 0 {
                write!(f, "{h}H")?;
            }
            if m > 0 {
                write!(f, "{m}M")?;
            }
            if sec > 0 {
                write!(f, "{sec}S")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(IsoDuration::parse("P70D"), Ok(IsoDuration(70 * 86_400)));
        assert_eq!(IsoDuration::parse("PT1H30M"), Ok(IsoDuration(5_400)));
        assert_eq!(IsoDuration::parse("P1W"), Ok(IsoDuration(7 * 86_400)));
        assert_eq!(IsoDuration(86_400 + 3_600).to_string(), "P1DT1H");
        for bad in [
            "", "P", "70D", "PT", "P1M", "P1Y", "PD", "P1H", "PT1D", "P1D2W",
        ] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
