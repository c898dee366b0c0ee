//! Typed evidence: what a finding rests on, as names, paths, line numbers, counts, flags and
//! instants rather than text. Rendering decides how each kind reads (JSON: RFC 3339 for
//! instants, numbers as numbers; text: dates for people). Keys may repeat (several lines
//! of a server log), and their order is kept.

use std::path::Path;

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub key: &'static str,
    pub value: Value,
}

impl Evidence {
    pub fn new(key: &'static str, value: impl Into<Value>) -> Self {
        Evidence {
            key,
            value: value.into(),
        }
    }
}

/// An evidence value, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Free text: a message, the server's own words, a byte preview.
    Text(String),
    /// A name: a host, a role, a distinguished name, a certificate name list.
    Name(String),
    /// A file or directory.
    Path(String),
    /// A line of a file (1-based).
    Line(u64),
    /// A count, a depth, a number of days.
    Number(i64),
    Flag(bool),
    /// An instant, in seconds since 1970 (UTC).
    Time(i64),
}

impl Value {
    pub fn name(text: impl Into<String>) -> Value {
        Value::Name(text.into())
    }

    pub fn path(path: impl AsRef<Path>) -> Value {
        Value::Path(path.as_ref().display().to_string())
    }

    pub fn line(number: usize) -> Value {
        Value::Line(number as u64)
    }

    /// The kind's name in JSON (`"kind"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Name(_) => "name",
            Value::Path(_) => "path",
            Value::Line(_) => "line",
            Value::Number(_) => "number",
            Value::Flag(_) => "flag",
            Value::Time(_) => "time",
        }
    }
}

/// An instant for people: `2026-11-01 21:45:51 UTC`.
pub fn human_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// An instant for machines: RFC 3339.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) | Value::Name(s) | Value::Path(s) => f.write_str(s),
            Value::Line(n) => write!(f, "{n}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Flag(b) => write!(f, "{}", if *b { "yes" } else { "no" }),
            Value::Time(t) => f.write_str(&human_time(*t)),
        }
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Flag(flag)
    }
}

macro_rules! number_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Number(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
number_from!(i64, i32, u8, u16, u32, u64, usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_for_people_and_machines() {
        assert_eq!(human_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(Value::Time(86_400).to_string(), "1970-01-02 00:00:00 UTC");
    }

    #[test]
    fn numbers_stay_numbers() {
        assert_eq!(Value::from(3usize), Value::Number(3));
        assert_eq!(Value::from(u64::MAX), Value::Number(i64::MAX));
        assert_eq!(Value::from(true).to_string(), "yes");
    }
}
