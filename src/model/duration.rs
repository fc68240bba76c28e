//! Durations as the config files write them. Pure.

use std::time::Duration;

/// Durations as people write them: `30s`, `5m`, `14d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration \"{text}\": {e} (use e.g. 30s, 5m, 14d)"))?;
    Ok(d)
}

/// Serde helper for optional durations inside raw structs.
pub mod duration_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        // Only secret sources use this, and nothing under `secret:` is quoted back.
        text.map(|t| {
            super::parse_duration(&t)
                .map_err(|_| serde::de::Error::custom("invalid duration (use e.g. 30s, 5m, 14d)"))
        })
        .transpose()
    }
}
