//! Human-friendly sizes (`512MiB`, `50GiB`) and durations (`15m`, `7d`) for the config.
//!
//! Both also accept a bare integer (bytes, seconds) so that environment variables
//! and TOML numbers work without a unit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte count written the way operators write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err("empty size; write e.g. \"512MiB\" or \"50GiB\"".into());
        }
        if trimmed.starts_with('-') {
            return Err(format!("size {s:?} is negative"));
        }
        bytesize::ByteSize::from_str(trimmed)
            .map(|b| Size(b.as_u64()))
            .map_err(|e| format!("{s:?} is not a size ({e}); write e.g. \"512MiB\" or \"50GiB\""))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exact binary units when they divide evenly, so that `config print`
        // round-trips to the same number of bytes.
        const UNITS: [(&str, u64); 5] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("B", 1),
        ];
        for (name, unit) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{name}", self.0 / unit);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"512MiB\" or \"50GiB\", or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// A duration written as `30s`, `15m`, `7d` (or an integer number of seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(s: u64) -> Self {
        Span(Duration::from_secs(s))
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim()).map(Span).map_err(|e| {
            format!("{s:?} is not a duration ({e}); write e.g. \"30s\", \"15m\" or \"7d\"")
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpanVisitor;
        impl Visitor<'_> for SpanVisitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"15m\" or \"7d\", or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
                Ok(Span::secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
                u64::try_from(v)
                    .map(Span::secs)
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(SpanVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!("512MiB".parse::<Size>().unwrap(), Size(512 << 20));
        assert_eq!("50GiB".parse::<Size>().unwrap(), Size(50 << 30));
        assert_eq!("10 GiB".parse::<Size>().unwrap(), Size(10 << 30));
        assert_eq!("1GB".parse::<Size>().unwrap(), Size(1_000_000_000));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert!("lots".parse::<Size>().is_err());
        assert!("-1GiB".parse::<Size>().is_err());
        assert!("".parse::<Size>().is_err());
    }

    #[test]
    fn sizes_display_round_trips() {
        for n in [
            0u64,
            1,
            1023,
            1024,
            512 << 20,
            10 << 30,
            (10 << 30) + 1,
            3 << 40,
        ] {
            let shown = Size(n).to_string();
            assert_eq!(shown.parse::<Size>().unwrap(), Size(n), "{shown}");
        }
        assert_eq!(Size(10 << 30).to_string(), "10GiB");
    }

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!("15m".parse::<Span>().unwrap(), Span::secs(900));
        assert_eq!("7d".parse::<Span>().unwrap(), Span::secs(7 * 86400));
        assert_eq!("30s".parse::<Span>().unwrap(), Span::secs(30));
        assert!("soon".parse::<Span>().is_err());
        assert!("15".parse::<Span>().is_err(), "a bare string needs a unit");
        for s in ["15m", "7days", "1h 30m", "250ms"] {
            let span: Span = s.parse().unwrap();
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
        }
    }
}
