//! The one way the doctor writes a file (`--output`): whole or not at all, and never through
//! a link someone planted. A new temporary file beside the destination is created
//! exclusively and without following links (O_CREAT | O_EXCL | O_NOFOLLOW), given the mode
//! the destination has (or the umask's default for a new one), then renamed over it. A link
//! at the destination is replaced, not written through.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many temporary names are tried before giving up (each taken name may be a trap).
const ATTEMPTS: u32 = 16;

/// Writes `path` whole or not at all.
pub fn write_replacing(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?
        .to_string_lossy()
        .into_owned();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let names = (0..ATTEMPTS).map(|attempt| {
        path.with_file_name(format!(
            ".{name}.{}.{:x}.tmp",
            std::process::id(),
            nonce.wrapping_add(attempt.wrapping_mul(0x9e37_79b9))
        ))
    });
    write_through_temporary(path, contents, names)
}

/// [`write_replacing`] with the temporary names to try, in order.
fn write_through_temporary(
    path: &Path,
    contents: &[u8],
    names: impl Iterator<Item = PathBuf>,
) -> io::Result<()> {
    // The destination's own mode, when it is a regular file; else the umask decides.
    let mode = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Some(meta.permissions().mode() & 0o7777),
        _ => None,
    };
    for temporary in names {
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode.unwrap_or(0o666))
            .open(&temporary);
        let mut file = match opened {
            // Someone else's file or link: leave it, try another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(file) => file,
        };
        let result = file
            .write_all(contents)
            .and_then(|_| match mode {
                // The umask must not narrow an existing file's mode.
                Some(mode) => file.set_permissions(fs::Permissions::from_mode(mode)),
                None => Ok(()),
            })
            .and_then(|_| file.sync_all())
            .and_then(|_| fs::rename(&temporary, path));
        if result.is_err() {
            // Ours: made by this call with O_EXCL.
            let _ = fs::remove_file(&temporary);
        }
        return result;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "every temporary name beside it is taken",
    ))
}

/// Whether `a` and `b` name the same file (device and inode, links followed); false when
/// either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_at_the_temporary_name_is_left_alone_and_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = dir.path().join(".out.planted.tmp");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let out = dir.path().join("out");
        let names = [planted.clone(), dir.path().join(".out.free.tmp")].into_iter();
        write_through_temporary(&out, b"report", names).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&out).unwrap(), "report");
        assert!(fs::symlink_metadata(&out).unwrap().file_type().is_file());
        assert!(fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_link_at_the_destination_is_replaced_and_the_mode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let out = dir.path().join("out");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_replacing(&out, b"report").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&out).unwrap().file_type().is_file());

        let kept = dir.path().join("kept");
        fs::write(&kept, "old").unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o640)).unwrap();
        write_replacing(&kept, b"new").unwrap();
        let meta = fs::metadata(&kept).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(&kept).unwrap(), "new");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 3, "no temporary file is left: {left:?}");
    }

    #[test]
    fn every_name_taken_is_an_error_that_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join(".taken");
        fs::write(&taken, "someone's").unwrap();
        let out = dir.path().join("out");
        let err = write_through_temporary(&out, b"x", std::iter::once(taken.clone())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&taken).unwrap(), "someone's");
        assert!(!out.exists());
    }
}
