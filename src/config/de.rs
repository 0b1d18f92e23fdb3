//! Field parsers used inside serde, so a bad value is reported at its own line and column.

use std::time::Duration;

use serde::{de::Error, Deserialize, Deserializer};

/// `"250ms"`, `"5s"`, `"2m"`: humantime durations; a bare number is refused because its unit
/// would be a guess.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let raw = String::deserialize(d)?;
    humantime::parse_duration(raw.trim()).map_err(|e| {
        D::Error::custom(format!(
            "invalid duration {raw:?} ({e}); write e.g. \"500ms\" or \"5s\""
        ))
    })
}

pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `host:port` entries with non-zero ports; host names are resolved when the policy is built.
pub fn host_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    for p in &raw {
        check_host_port(p).map_err(D::Error::custom)?;
    }
    Ok(raw)
}

/// Why a setting's value is refused; the text is the config error's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not host:port")]
    NotHostPort(String),
    #[error("{0:?} has an invalid port")]
    BadPort(String),
    #[error("invalid size {0:?}; write e.g. \"10MiB\"")]
    BadSize(String),
    #[error("invalid size unit {unit:?} in {raw:?}; use B, KiB, MiB or GiB")]
    BadSizeUnit { unit: String, raw: String },
    #[error("size {0:?} is too large")]
    SizeTooLarge(String),
}

pub fn check_host_port(raw: &str) -> Result<(), ValueError> {
    let (host, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| ValueError::NotHostPort(raw.to_string()))?;
    let port: u16 = port.parse().map_err(|_| ValueError::BadPort(raw.to_string()))?;
    if port == 0 || host.is_empty() {
        return Err(ValueError::NotHostPort(raw.to_string()));
    }
    Ok(())
}

/// `"100MiB"`, `"512KiB"`, `"1GiB"`, `"2048"` (bytes); decimal units (`KB`, `MB`) mean 1000s.
pub fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_byte_size(&s).map_err(D::Error::custom),
    }
}

pub fn opt_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
}

pub fn parse_byte_size(raw: &str) -> Result<u64, ValueError> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| ValueError::BadSize(raw.to_string()))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(ValueError::BadSizeUnit {
                unit: other.to_string(),
                raw: raw.to_string(),
            })
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| ValueError::SizeTooLarge(raw.to_string()))
}
