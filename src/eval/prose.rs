//! Words built from typed values, in one place: instants for people and relative to the
//! injected clock, which certificate of a chain, byte previews, the encryption libpq names
//! in its messages.

pub(in crate::eval) use crate::evidence::human_time as date;

/// "expires on 2026-11-01 21:45:51 UTC (in 3 days)".
pub(in crate::eval) fn instant(unix: i64, now: i64) -> String {
    format!("{} ({})", date(unix), relative(unix, now))
}

/// The certificate at `depth` of a chain of `sent` certificates, as a person names it; a
/// depth past the chain is the trust anchor from the root file.
pub(in crate::eval) fn which_certificate(depth: usize, sent: usize) -> String {
    match depth {
        0 => "the server certificate".to_string(),
        d if d < sent => format!("the chain certificate at depth {d}"),
        _ => "the trust anchor in your root file".to_string(),
    }
}

/// "3 days ago", "in 1 day": computed here from the injected clock, never in rendering.
pub(in crate::eval) fn relative(unix: i64, now: i64) -> String {
    let days = (unix - now) / 86_400;
    let hours = (unix - now) / 3_600;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (days, hours) {
        (0, h) if h >= 0 => format!("in {}", plural(h, "hour")),
        (0, h) => format!("{} ago", plural(-h, "hour")),
        (d, _) if d > 0 => format!("in {}", plural(d, "day")),
        (d, _) => format!("{} ago", plural(-d, "day")),
    }
}

pub(in crate::eval) fn hex_preview(bytes: &[u8]) -> String {
    let shown: Vec<u8> = bytes.iter().copied().take(32).collect();
    let text: String = shown
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        })
        .collect();
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{} \"{}\"{}",
        hex.join(" "),
        text,
        if bytes.len() > 32 { " ..." } else { "" }
    )
}

pub(in crate::eval) fn encryption_name(on_tls: bool) -> &'static str {
    if on_tls {
        "SSL encryption"
    } else {
        "no encryption"
    }
}
