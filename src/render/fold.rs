//! Text folded to a terminal's width: a writer that passes whole lines on, breaking a line
//! longer than the width at a blank and indenting the rest under the line's own text. Only
//! for text on a terminal; files and pipes get the lines whole (grep, CI logs).

use std::io::{self, Write};

/// Folds each line written through it to `width` visible columns.
pub struct Fold<W: Write> {
    inner: W,
    width: usize,
    pending: Vec<u8>,
}

impl<W: Write> Fold<W> {
    pub fn new(inner: W, width: usize) -> Fold<W> {
        Fold {
            inner,
            width: width.max(20),
            pending: Vec::new(),
        }
    }

    fn emit_line(&mut self, line: &str) -> io::Result<()> {
        for (i, part) in fold_line(line, self.width).iter().enumerate() {
            if i > 0 {
                self.inner.write_all(b"\n")?;
            }
            self.inner.write_all(part.as_bytes())?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Fold<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.emit_line(&text)?;
            self.inner.write_all(b"\n")?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
            self.emit_line(&text)?;
        }
        self.inner.flush()
    }
}

/// The visible width of text, not counting ANSI escape sequences (colour).
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// One line as the parts it folds into; the parts after the first are indented two columns
/// deeper than the line's own indentation. A word longer than the width stays whole.
fn fold_line(line: &str, width: usize) -> Vec<String> {
    if visible_width(line) <= width {
        return vec![line.to_string()];
    }
    let indent = line.len() - line.trim_start_matches(' ').len();
    let continuation = " ".repeat((indent + 2).min(width / 2));
    let mut parts = Vec::new();
    let mut current = line[..indent].to_string();
    let mut current_width = indent;
    let mut empty = true;
    for word in line[indent..].split(' ') {
        let word_width = visible_width(word);
        if !empty && current_width + 1 + word_width > width {
            parts.push(std::mem::replace(&mut current, continuation.clone()));
            current_width = continuation.len();
            empty = true;
        }
        if !empty {
            current.push(' ');
            current_width += 1;
        }
        current.push_str(word);
        current_width += word_width;
        empty = false;
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_blanks_under_their_indentation() {
        let mut out = Vec::new();
        let mut fold = Fold::new(&mut out, 30);
        writeln!(fold, "short line").unwrap();
        writeln!(
            fold,
            "        fix: renew the server certificate (ssl_cert_file), then reload"
        )
        .unwrap();
        fold.flush().unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "short line");
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{text}");
        assert!(lines[2].starts_with("          "), "{text}");
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            words.join(" "),
            "short line fix: renew the server certificate (ssl_cert_file), then reload"
        );
    }

    #[test]
    fn colour_does_not_count_and_a_long_word_stays_whole() {
        assert_eq!(visible_width("\u{1b}[1mFAIL\u{1b}[0m"), 4);
        let parts = fold_line(&format!("x {}", "y".repeat(50)), 20);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].trim(), "y".repeat(50));
    }
}
