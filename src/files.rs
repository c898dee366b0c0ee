//! The one way the doctor reads a file: opened non-blocking, the opened descriptor checked
//! (a regular file, not too large), the read capped. A FIFO, a device, `/proc/kmsg` (a
//! regular file that blocks) or a file that grows while it is read can neither hang the
//! doctor nor make it allocate without bound. Text files are kept byte for byte
//! (`untrusted::decode`), and a text file that holds a private key is refused without
//! echoing it.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Configuration files (pg_hba.conf, the service file, a passfile, a targets file).
pub const MAX_TEXT_FILE: u64 = 1 << 20;

fn error(text: impl Into<String>) -> io::Error {
    io::Error::other(text.into())
}

/// Opens `path` for reading without blocking and checks what was opened.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(error("is a directory"));
    }
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(error(format!(
            "{what}, not a regular file (reading it could block forever)"
        )));
    }
    Ok(file)
}

/// Opens a file that will be read later (a live server log): regular, and a first read
/// does not block (`/proc/kmsg` passes the regular-file check and then blocks).
pub fn check_readable(path: &Path) -> io::Result<()> {
    let mut file = open_regular(path)?;
    let mut byte = [0u8; 1];
    match file.read(&mut byte) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(error(
            "reading it would block (a special file such as /proc/kmsg)",
        )),
        Err(e) => Err(e),
    }
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(error(format!(
            "{len} bytes is too large (the limit is {limit} bytes)"
        )));
    }
    read_capped(file, limit)
}

/// Reads at most `limit` bytes from an opened file; more is an error, and so is a read that
/// would block (a special file that claims to be regular).
pub fn read_capped(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match file.take(limit + 1).read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(error(
                "reading it would block (a special file such as /proc/kmsg)",
            ))
        }
        Err(e) => return Err(e),
    }
    if out.len() as u64 > limit {
        return Err(error(format!(
            "it grew past the limit of {limit} bytes while it was read"
        )));
    }
    Ok(out)
}

/// Whether bytes hold a PEM private key (of any kind, encrypted or not).
pub fn holds_private_key(bytes: &[u8]) -> bool {
    let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
    let Some(begin) = find(b"-----BEGIN ") else {
        return false;
    };
    bytes[begin..]
        .windows(b"PRIVATE KEY-----".len())
        .take(64)
        .any(|w| w == b"PRIVATE KEY-----")
}

/// Reads a text configuration file of at most 1 MiB, kept byte for byte. Binary data and
/// private keys are refused (a key passed by mistake must never be printed line by line).
pub fn read_text(path: &Path) -> io::Result<String> {
    let bytes = read_limited(path, MAX_TEXT_FILE)?;
    if holds_private_key(&bytes) {
        return Err(error(
            "it holds a private key, not configuration text; its contents are not shown",
        ));
    }
    if bytes.contains(&0) {
        return Err(error(
            "binary data (a NUL byte): not a text configuration file",
        ));
    }
    Ok(crate::untrusted::decode(&bytes))
}

/// The longest line a streamed text file may hold.
pub const MAX_LINE: usize = 64 << 10;

/// A text file read a line at a time (a targets file of any length): memory stays at one
/// line. A line is kept byte for byte; one longer than [`MAX_LINE`], one with a NUL, and a
/// private key end the reading with an error naming the line.
pub struct TextLines {
    reader: io::BufReader<File>,
    line: usize,
    done: bool,
}

impl TextLines {
    pub fn open(path: &Path) -> io::Result<TextLines> {
        Ok(TextLines {
            reader: io::BufReader::new(open_regular(path)?),
            line: 0,
            done: false,
        })
    }
}

impl Iterator for TextLines {
    /// The line's number (from 1) and its text without the line end.
    type Item = io::Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        if self.done {
            return None;
        }
        self.line += 1;
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes);
        // A bad line is reported, and the lines after it are still read; only a file that
        // cannot be read, or holds a key, ends the reading.
        let (failure, ends) = match read {
            Ok(0) => {
                self.done = true;
                return None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => (
                Some(error(format!(
                    "line {}: reading it would block (a special file)",
                    self.line
                ))),
                true,
            ),
            Err(e) => (Some(error(format!("line {}: {e}", self.line))), true),
            Ok(_) if holds_private_key(&bytes) => (
                Some(error(
                    "it holds a private key, not configuration text; its contents are not shown",
                )),
                true,
            ),
            Ok(_) if bytes.len() > MAX_LINE && !bytes.ends_with(b"\n") => {
                let skipped = self.skip_rest_of_line();
                (
                    Some(error(format!(
                        "line {} is longer than {} KiB: skipped{}",
                        self.line,
                        MAX_LINE >> 10,
                        if skipped {
                            ""
                        } else {
                            " (and the file ends there)"
                        }
                    ))),
                    false,
                )
            }
            Ok(_) if bytes.contains(&0) => (
                Some(error(format!(
                    "line {}: binary data (a NUL byte), not text: skipped",
                    self.line
                ))),
                false,
            ),
            Ok(_) => (None, false),
        };
        if let Some(e) = failure {
            self.done = ends;
            return Some(Err(e));
        }
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        // A UTF-8 byte order mark is not part of the first line's text.
        if self.line == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        Some(Ok((self.line, crate::untrusted::decode(&bytes))))
    }
}

impl TextLines {
    /// Reads on to the end of an overlong line, a bounded piece at a time; false when the
    /// file ended (or failed) first.
    fn skip_rest_of_line(&mut self) -> bool {
        use std::io::BufRead;
        loop {
            let mut piece = Vec::new();
            match (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut piece)
            {
                Ok(0) | Err(_) => {
                    self.done = true;
                    return false;
                }
                Ok(_) if piece.ends_with(b"\n") => return true,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_stream_and_refuse_what_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets");
        std::fs::write(&path, "a\r\n\nb").unwrap();
        let lines: Vec<_> = TextLines::open(&path)
            .unwrap()
            .map(|l| l.unwrap())
            .collect();
        assert_eq!(
            lines,
            [(1, "a".into()), (2, String::new()), (3, "b".into())]
        );
        std::fs::write(&path, format!("a\n{}\n", "x".repeat(MAX_LINE + 1))).unwrap();
        let lines: Vec<_> = TextLines::open(&path).unwrap().collect();
        assert_eq!(lines.len(), 2);
        let error = lines[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("line 2 is longer than 64 KiB"), "{error}");
        // The lines after a bad one are still read; a BOM is not part of the first line.
        std::fs::write(
            &path,
            format!("\u{feff}a\n{}\nb\nc\0d\ne\n", "x".repeat(3 * MAX_LINE)),
        )
        .unwrap();
        let lines: Vec<_> = TextLines::open(&path).unwrap().collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[0].as_ref().unwrap(), &(1, "a".to_string()));
        assert!(lines[1].is_err());
        assert_eq!(lines[2].as_ref().unwrap(), &(3, "b".to_string()));
        assert!(lines[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("line 4"));
        assert_eq!(lines[4].as_ref().unwrap(), &(5, "e".to_string()));
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nMIIE\n").unwrap();
        let error = TextLines::open(&path).unwrap().next().unwrap().unwrap_err();
        assert!(error.to_string().contains("private key"), "{error}");
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        for path in ["/dev/zero", "/dev/null", "/dev/stdin"] {
            if Path::new(path).exists() {
                assert!(read_limited(Path::new(path), 10).is_err(), "{path}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_limited(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(read_limited(dir.path(), 10)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        // /proc/kmsg is regular and empty, and a blocking read would wait for kernel messages.
        if Path::new("/proc/kmsg").exists() {
            let started = std::time::Instant::now();
            let _ = read_limited(Path::new("/proc/kmsg"), MAX_TEXT_FILE);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[test]
    fn limits_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 100]).unwrap();
        assert!(read_limited(&big, 99).is_err());
        assert_eq!(read_limited(&big, 100).unwrap().len(), 100);
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = read_text(&key).unwrap_err().to_string();
        assert!(
            err.contains("private key") && !err.contains("MIIB"),
            "{err}"
        );
        assert!(holds_private_key(b"x\n-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(!holds_private_key(b"-----BEGIN CERTIFICATE-----\n"));
        let raw = dir.path().join("raw");
        std::fs::write(&raw, b"password=Gr\xfcn\n").unwrap();
        let text = read_text(&raw).unwrap();
        assert_eq!(crate::untrusted::encode(&text), b"password=Gr\xfcn\n");
    }
}
