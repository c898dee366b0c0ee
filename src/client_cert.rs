//! The client certificate and key, loaded as libpq loads them: a missing certificate file
//! means no certificate is sent; a present certificate needs a readable key with safe
//! permissions, and any failure is a client-side TLS set-up failure (allow/prefer then fall
//! back to plaintext).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::trust::{pem_certificates, read_bounded};

#[derive(Debug)]
pub enum ClientIdentity {
    /// No certificate will be sent.
    NotConfigured { cert_path: Option<PathBuf> },
    Loaded {
        cert_path: PathBuf,
        key_path: PathBuf,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    },
    /// libpq would fail to set up TLS: `code` is the finding, `message` libpq's words.
    Failed {
        code: &'static str,
        path: PathBuf,
        message: String,
    },
}

impl ClientIdentity {
    pub fn setup_failure(&self) -> Option<(&'static str, String)> {
        match self {
            ClientIdentity::Failed { code, message, .. } => Some((code, message.clone())),
            _ => None,
        }
    }
}

pub fn load(cert: Option<&Path>, key: Option<&Path>) -> ClientIdentity {
    let Some(cert_path) = cert else {
        return ClientIdentity::NotConfigured { cert_path: None };
    };
    match std::fs::metadata(cert_path) {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return ClientIdentity::NotConfigured {
                cert_path: Some(cert_path.to_path_buf()),
            }
        }
        Err(e) => {
            return ClientIdentity::Failed {
                code: "client_cert_unreadable",
                path: cert_path.to_path_buf(),
                message: format!(
                    "could not open certificate file \"{}\": {e}",
                    cert_path.display()
                ),
            }
        }
        Ok(_) => {}
    }
    let unreadable = |reason: String| ClientIdentity::Failed {
        code: "client_cert_unreadable",
        path: cert_path.to_path_buf(),
        message: format!(
            "could not read certificate file \"{}\": {reason}",
            cert_path.display()
        ),
    };
    let bytes = match read_bounded(cert_path) {
        Ok(b) => b,
        Err(e) => return unreadable(e),
    };
    let chain = match pem_certificates(&bytes) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return unreadable("no start line".into()),
        Err(e) => return unreadable(e),
    };
    let Some(key_path) = key else {
        return ClientIdentity::Failed {
            code: "client_key_missing",
            path: cert_path.to_path_buf(),
            message: "certificate present, but no private key file configured".into(),
        };
    };
    let meta = match std::fs::metadata(key_path) {
        Ok(m) => m,
        Err(_) => {
            return ClientIdentity::Failed {
                code: "client_key_missing",
                path: key_path.to_path_buf(),
                message: format!(
                    "certificate present, but not private key file \"{}\"",
                    key_path.display()
                ),
            }
        }
    };
    if !meta.is_file() {
        return ClientIdentity::Failed {
            code: "client_key_unreadable",
            path: key_path.to_path_buf(),
            message: format!(
                "private key file \"{}\" is not a regular file",
                key_path.display()
            ),
        };
    }
    let mode = meta.permissions().mode();
    let forbidden = if meta.uid() == 0 {
        0o037 // root-owned: no group write/execute, no other bits
    } else {
        0o077
    };
    if mode & forbidden != 0 {
        return ClientIdentity::Failed {
            code: "client_key_permissions",
            path: key_path.to_path_buf(),
            message: format!(
                "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
                key_path.display()
            ),
        };
    }
    let key_bytes = match read_bounded(key_path) {
        Ok(b) => b,
        Err(e) => {
            return ClientIdentity::Failed {
                code: "client_key_unreadable",
                path: key_path.to_path_buf(),
                message: format!(
                    "could not load private key file \"{}\": {e}",
                    key_path.display()
                ),
            }
        }
    };
    let key = match PrivateKeyDer::from_pem_slice(&key_bytes) {
        Ok(k) => k,
        Err(_) => {
            let text = String::from_utf8_lossy(&key_bytes);
            let encrypted =
                text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED");
            return ClientIdentity::Failed {
                code: if encrypted {
                    "client_key_encrypted"
                } else {
                    "client_key_unreadable"
                },
                path: key_path.to_path_buf(),
                message: format!(
                    "could not load private key file \"{}\": {}",
                    key_path.display(),
                    if encrypted {
                        "the key is encrypted and this version of the doctor cannot decrypt it"
                    } else {
                        "unsupported"
                    }
                ),
            };
        }
    };
    ClientIdentity::Loaded {
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        chain: chain.into_iter().map(CertificateDer::from).collect(),
        key,
    }
}
