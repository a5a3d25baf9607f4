//! Durations in configuration files: one parser, one error message, so every
//! section spells "30s" the same way and a typo is named the same way.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "crate::duration::deserialize")]`: a
/// humantime string such as "30s", "5m" or "250ms".
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?}: {e} (write e.g. \"30s\", \"5m\", \"250ms\")"
        ))
    })
}

/// The same for an optional key (used with `#[serde(default)]`).
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::deserialize")]
        d: std::time::Duration,
    }

    #[test]
    fn a_typo_is_named_with_an_example_of_the_right_spelling() {
        let e = serde_yaml_ng::from_str::<T>("d: 5 minits").err().unwrap();
        assert!(
            e.to_string().contains("invalid duration \"5 minits\""),
            "{e}"
        );
        assert!(e.to_string().contains("\"30s\""), "{e}");
        let t: T = serde_yaml_ng::from_str("d: 250ms").unwrap();
        assert_eq!(t.d, std::time::Duration::from_millis(250));
    }
}
