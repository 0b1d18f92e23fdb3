//! Field parsers used inside serde, so a bad value is reported at its own line and column.

use std::time::Duration;

use serde::{de::Error, Deserialize, Deserializer};

/// `"250ms"`, `"5s"`, `"2m"`: humantime durations; a bare number is refused because its unit
/// would be a guess.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let raw = String::deserialize(d)?;
    humantime::parse_duration(raw.trim())
        .map_err(|e| D::Error::custom(format!("invalid duration {raw:?} ({e}); write e.g. \"500ms\" or \"5s\"")))
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

pub fn check_host_port(raw: &str) -> Result<(), String> {
    let (host, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("{raw:?} is not host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{raw:?} has an invalid port"))?;
    if port == 0 || host.is_empty() {
        return Err(format!("{raw:?} is not host:port"));
    }
    Ok(())
}
