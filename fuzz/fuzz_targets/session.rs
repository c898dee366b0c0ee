//! A hostile server's answers to the startup and to the one-row pg_stat_ssl query, with no
//! network. The input is a list of `(count, message)` chunks, each message repeated `count`
//! (up to 65,535) times, so a few bytes make a flood of rows, errors, notices or parameter
//! reports. The doctor must end (libFuzzer's -timeout) and keep its memory bounded
//! (-rss_limit_mb, -malloc_limit_mb), whatever the server says.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::plan::Secret;
use pgtls_doctor::probe;

/// Expands the chunks lazily: the flood is never held whole.
struct Flood<'a> {
    chunks: Vec<(u32, &'a [u8])>,
    at: usize,
    offset: usize,
}

impl Read for Flood<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((count, bytes)) = self.chunks.get_mut(self.at) {
            if *count == 0 || bytes.is_empty() {
                self.at += 1;
                continue;
            }
            let n = buf.len().min(bytes.len() - self.offset);
            buf[..n].copy_from_slice(&bytes[self.offset..self.offset + n]);
            self.offset += n;
            if self.offset == bytes.len() {
                self.offset = 0;
                *count -= 1;
            }
            return Ok(n);
        }
        Ok(0)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let count = u16::from_be_bytes([rest[0], rest[1]]) as u32;
        let len = (u16::from_be_bytes([rest[2], rest[3]]) as usize).min(rest.len() - 4);
        chunks.push((count.max(1), &rest[4..4 + len]));
        rest = &rest[4 + len..];
    }
    let password = Secret::new("fuzz-pw");
    let _ = probe::startup_against(
        Flood {
            chunks,
            at: 0,
            offset: 0,
        },
        Some(&password),
    );
});
