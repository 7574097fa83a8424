//! Byte quantities: parsing rates like `2MiB/s` and printing sizes like `12.4 GiB`.

/// Why [`parse_bytes`] rejected a text.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseBytesError {
    /// The text does not start with a number.
    #[error("{text:?} does not start with a number")]
    NotANumber {
        /// The text as given.
        text: String,
    },
    /// The unit is none of the known ones.
    #[error("unknown unit {unit:?} in {text:?}")]
    UnknownUnit {
        /// The unit, lowercased.
        unit: String,
        /// The text as given.
        text: String,
    },
    /// The value does not fit in a `u64`.
    #[error("{text:?} is too large")]
    TooLarge {
        /// The text as given.
        text: String,
    },
}

/// Parses a byte count or rate: a number, an optional unit (`B`, `kB`/`K`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB`, `TB`, `TiB`, case-insensitive) and an optional `/s`.
///
/// ```
/// assert_eq!(torrent_stats::units::parse_bytes("2MiB/s"), Ok(2 * 1024 * 1024));
/// assert_eq!(torrent_stats::units::parse_bytes("1.5k"), Ok(1500));
/// ```
pub fn parse_bytes(text: &str) -> Result<u64, ParseBytesError> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t).trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| ParseBytesError::NotANumber {
        text: text.to_string(),
    })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(ParseBytesError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(ParseBytesError::TooLarge {
            text: text.to_string(),
        });
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count with binary units: `512 B`, `12.4 GiB`.
///
/// ```
/// assert_eq!(torrent_stats::units::format_bytes(13_314_398_618), "12.4 GiB");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(parse_bytes("8MiB/s"), Ok(8 << 20));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("1 GB"), Ok(1_000_000_000));
        assert!(matches!(
            parse_bytes("fast"),
            Err(ParseBytesError::NotANumber { .. })
        ));
        let e = parse_bytes("3 parsecs").unwrap_err();
        assert!(matches!(&e, ParseBytesError::UnknownUnit { unit, .. } if unit == "parsecs"));
        assert_eq!(e.to_string(), r#"unknown unit "parsecs" in "3 parsecs""#);
        assert!(matches!(
            parse_bytes("99999999999999999999999TiB"),
            Err(ParseBytesError::TooLarge { .. })
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }
}
