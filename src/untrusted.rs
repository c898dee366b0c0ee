//! Text from outside the doctor: environment variables, files, command-line arguments and
//! what a server sends. Two rules, in one place.
//!
//! - **Kept byte for byte.** libpq sends the bytes it was given (a Latin-1 password in
//!   PGPASSWORD, a user name from a passfile). `decode` keeps every byte that is not UTF-8 as
//!   a character of Unicode's last private-use block (U+10FF00 + byte), so text can be parsed
//!   as text and `encode` gives back the exact bytes for the wire. Characters of that block in
//!   genuine input are escaped the same way, so the mapping is exact both ways.
//! - **Shown safely.** `for_terminal` escapes control characters (C0, DEL, C1: ESC, CR,
//!   backspace, OSC 52, ...), Unicode line separators and bidi overrides, so a hostile server
//!   or file cannot clear the screen, write the clipboard or rewrite the verdict. Every text
//!   renderer passes every value it did not write itself through it. JSON needs no such care:
//!   its encoder escapes control characters.

use std::borrow::Cow;

const RAW_BASE: u32 = 0x10FF00;

fn raw_char(byte: u8) -> char {
    char::from_u32(RAW_BASE + byte as u32).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn raw_byte(c: char) -> Option<u8> {
    let v = c as u32;
    (RAW_BASE..=RAW_BASE + 0xff)
        .contains(&v)
        .then(|| (v - RAW_BASE) as u8)
}

/// Bytes as text, with every byte that is not UTF-8 kept (see the module comment).
pub fn decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if raw_byte(c).is_some() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push(raw_char(b));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push(raw_char(*b));
        }
    }
    out
}

/// An OS string (environment variable, argument) as text, bytes kept.
pub fn decode_os(value: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    decode(value.as_bytes())
}

/// The exact bytes `decode` was given.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match raw_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// Whether the text came from bytes that were not UTF-8.
pub fn has_raw_bytes(text: &str) -> bool {
    text.chars().any(|c| raw_byte(c).is_some())
}

fn needs_escape(c: char) -> bool {
    let v = c as u32;
    v < 0x20
        || (0x7f..=0x9f).contains(&v)
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        )
        || (0x202a..=0x202e).contains(&v)
        || (0x2066..=0x2069).contains(&v)
        || raw_byte(c).is_some()
}

/// Text safe to print on a terminal: control characters and bidi overrides escaped, bytes
/// that were not UTF-8 shown as `\xNN`.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if let Some(b) = raw_byte(c) {
            out.push_str(&format!("\\x{b:02x}"));
        } else if needs_escape(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for JSON: bytes that were not UTF-8 shown as `\xNN` (JSON strings are Unicode;
/// control characters are escaped by the JSON encoder itself).
pub fn for_json(text: &str) -> Cow<'_, str> {
    if !has_raw_bytes(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match raw_byte(c) {
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Every string of a JSON value through [`for_json`].
pub fn clean_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(clean) = for_json(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(clean_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(clean_json),
        _ => {}
    }
}

/// [`for_terminal`], cut to at most `max` characters with a note of what was left out: a
/// hostile server must not be able to inflate a text report without bound (JSON keeps the
/// value, bounded by the wire limits).
pub fn for_terminal_short(text: &str, max: usize) -> Cow<'_, str> {
    let count = text.chars().count();
    if count <= max {
        return for_terminal(text);
    }
    let cut: String = text.chars().take(max).collect();
    Cow::Owned(format!(
        "{}… ({} more characters)",
        for_terminal(&cut),
        count - max
    ))
}

/// Text from a file, with anything that looks like a credential hidden: `password=` values
/// (quoted or not), md5 hashes, SCRAM verifiers, and the secret of a PgBouncer auth_file
/// entry (`"user" "secret"`). For every echo of a line the doctor could not use, whatever
/// file it came from: a pgbouncer.ini given as pg_hba.conf must not print its passwords.
pub fn hide_credentials(text: &str) -> Cow<'_, str> {
    use std::sync::OnceLock;
    static RULES: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (
                r#"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|"[^"]*"?|\S+)"#,
                "${1}<hidden>",
            ),
            (r"(?i)md5[0-9a-f]{32}", "md5<hidden>"),
            (r"SCRAM-SHA-256\$[^\s\x22']+", "SCRAM-SHA-256$$<hidden>"),
            (
                r#"^(\s*"(?:[^"]|"")*"\s+)"(?:[^"]|"")*""#,
                "${1}\"<hidden>\"",
            ),
        ]
        .into_iter()
        .filter_map(|(pattern, with)| regex::Regex::new(pattern).ok().map(|r| (r, with)))
        .collect()
    });
    let mut text = Cow::Borrowed(text);
    for (rule, with) in rules {
        if rule.is_match(&text) {
            text = Cow::Owned(rule.replace_all(&text, *with).into_owned());
        }
    }
    text
}

/// Whether a line is a PgBouncer auth_file entry (`"user" "password or hash"`): never a
/// target, a rule or anything else the doctor reads.
pub fn is_auth_file_entry(line: &str) -> bool {
    use std::sync::OnceLock;
    static ENTRY: OnceLock<Option<regex::Regex>> = OnceLock::new();
    ENTRY
        .get_or_init(|| regex::Regex::new(r#"^\s*"(?:[^"]|"")*"\s+"(?:[^"]|"")*""#).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_exactly() {
        let cases: [&[u8]; 5] = [
            b"plain",
            b"Gr\xfcnSECRET",
            b"\xff\xfe\x00",
            "caf\u{e9} \u{10ff41}".as_bytes(),
            b"\xf4\x8f\xbc\x80",
        ];
        for bytes in cases {
            assert_eq!(encode(&decode(bytes)), bytes, "{bytes:?}");
        }
        assert!(has_raw_bytes(&decode(b"Gr\xfcn")));
        assert!(!has_raw_bytes(&decode("Grün".as_bytes())));
    }

    #[test]
    fn terminal_escapes() {
        assert_eq!(for_terminal("ok"), Cow::Borrowed("ok"));
        assert_eq!(for_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(for_terminal("x\ry\u{8}"), "x\\ry\\x08");
        assert_eq!(
            for_terminal("\x1b]52;c;SGVsbG8=\x07"),
            "\\x1b]52;c;SGVsbG8=\\x07"
        );
        assert_eq!(for_terminal("\u{9b}31m"), "\\x9b31m");
        assert_eq!(for_terminal("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(for_terminal(&decode(b"Gr\xfcn")), "Gr\\xfcn");
        assert_eq!(for_terminal("l1\nl2"), "l1\\nl2");
        assert_eq!(for_terminal("Grün ü"), "Grün ü");
        let long = "x".repeat(100);
        assert_eq!(
            for_terminal_short(&long, 10),
            "xxxxxxxxxx… (90 more characters)"
        );
    }

    #[test]
    fn credentials_are_hidden_wherever_a_line_is_echoed() {
        for (line, secret) in [
            ("app = host=db password=s3cret user=x", "s3cret"),
            ("app = host=db password='s3 cret' user=x", "s3 cret"),
            ("PASSWORD = \"hunter2\"", "hunter2"),
            (
                "\"alice\" \"md5aabbccddeeff00112233445566778899\"",
                "aabbccddeeff",
            ),
            (
                "\"bob\" \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"",
                "c2FsdA",
            ),
            ("\"carol\" \"plain text pw\"", "plain text pw"),
            ("x md5aabbccddeeff00112233445566778899 y", "aabbccddeeff"),
        ] {
            let shown = hide_credentials(line);
            assert!(!shown.contains(secret), "{line} -> {shown}");
            assert!(shown.contains("<hidden>"), "{line} -> {shown}");
        }
        assert_eq!(
            hide_credentials("host all all 0.0.0.0/0 scram-sha-256"),
            "host all all 0.0.0.0/0 scram-sha-256"
        );
        assert!(is_auth_file_entry("\"alice\" \"md5abc\""));
        assert!(!is_auth_file_entry("host=db user=alice"));
    }
}
