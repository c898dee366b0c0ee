//! The client certificate and key, loaded as libpq loads them (through OpenSSL, the library
//! libpq uses): a missing certificate file means no certificate is sent; a present one needs
//! a readable key with safe permissions that matches it, decrypted with sslpassword when it is
//! encrypted (PKCS#8 PBES2 or PBE-SHA1-3DES, or the legacy `Proc-Type: 4,ENCRYPTED` form).
//! Any failure here is a client-side TLS set-up failure: allow and prefer then fall back to
//! plaintext. PKCS#12 bundles, which libpq cannot read, are opened to say what they would get.

use crate::catalogue::Code;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::plan::Secret;
use crate::trust::{pem_certificates, read_bounded};
use crate::x509::{self, CertSummary};

/// Why no certificate is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCertificate {
    /// ~/.postgresql/postgresql.crt does not exist (the common case).
    DefaultMissing(PathBuf),
    /// sslcert names a file that does not exist: libpq silently sends none.
    ExplicitMissing(PathBuf),
    /// sslcertmode=disable.
    CertModeDisabled,
    /// No home directory and no sslcert.
    NoPath,
}

/// A certificate and key that loaded.
pub struct ClientMaterial {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub leaf: CertSummary,
    pub key_was_encrypted: bool,
}

impl std::fmt::Debug for ClientMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("ClientMaterial")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("leaf", &self.leaf.subject)
            .finish_non_exhaustive()
    }
}

/// What a PKCS#12 bundle given as sslcert holds, opened with sslpassword (or no password).
#[derive(Debug, Clone)]
pub struct Pkcs12Contents {
    pub path: PathBuf,
    /// The bundle's certificate, when it could be opened.
    pub leaf: Option<CertSummary>,
    pub ca_count: usize,
    pub has_key: bool,
    /// Why it could not be opened (wrong or missing password, unsupported algorithm).
    pub error: Option<String>,
}

#[derive(Debug)]
pub enum ClientIdentity {
    NotConfigured(NoCertificate),
    Loaded(Box<ClientMaterial>),
    /// libpq would fail to set up TLS: `code` is the finding, `message` libpq's words.
    Failed {
        code: Code,
        path: PathBuf,
        message: String,
        /// The certificate, when it was readable (for evidence).
        leaf: Option<Box<CertSummary>>,
        pkcs12: Option<Box<Pkcs12Contents>>,
    },
}

impl ClientIdentity {
    pub fn leaf(&self) -> Option<&CertSummary> {
        match self {
            ClientIdentity::Loaded(m) => Some(&m.leaf),
            ClientIdentity::Failed { leaf, .. } => leaf.as_deref(),
            ClientIdentity::NotConfigured(_) => None,
        }
    }
}

/// The request for a client identity, from the plan.
pub struct ClientRequest<'a> {
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub cert_explicit: bool,
    pub sslpassword: Option<&'a Secret>,
    pub cert_mode_disabled: bool,
}

pub fn load(req: &ClientRequest) -> ClientIdentity {
    if req.cert_mode_disabled {
        return ClientIdentity::NotConfigured(NoCertificate::CertModeDisabled);
    }
    let Some(cert_path) = req.cert else {
        return ClientIdentity::NotConfigured(NoCertificate::NoPath);
    };
    let fail = |code: Code, path: &Path, message: String, leaf: Option<CertSummary>| {
        ClientIdentity::Failed {
            code,
            path: path.to_path_buf(),
            message,
            leaf: leaf.map(Box::new),
            pkcs12: None,
        }
    };
    match std::fs::metadata(cert_path) {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return ClientIdentity::NotConfigured(if req.cert_explicit {
                NoCertificate::ExplicitMissing(cert_path.to_path_buf())
            } else {
                NoCertificate::DefaultMissing(cert_path.to_path_buf())
            });
        }
        Err(e) => {
            return fail(
                Code::ClientCertUnreadable,
                cert_path,
                format!(
                    "could not open certificate file \"{}\": {e}",
                    cert_path.display()
                ),
                None,
            )
        }
        Ok(_) => {}
    }
    let unreadable = |reason: String| {
        fail(
            Code::ClientCertUnreadable,
            cert_path,
            format!(
                "could not read certificate file \"{}\": {reason}",
                cert_path.display()
            ),
            None,
        )
    };
    let bytes = match read_bounded(cert_path) {
        Ok(b) => b,
        Err(e) => return unreadable(e.to_string()),
    };
    let chain = match pem_certificates(&bytes) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            if let Some(contents) = open_pkcs12(cert_path, &bytes, req.sslpassword) {
                return ClientIdentity::Failed {
                    code: Code::ClientCertUnreadable,
                    path: cert_path.to_path_buf(),
                    message: format!(
                        "could not read certificate file \"{}\": no start line (it is a PKCS#12 bundle, which libpq cannot read)",
                        cert_path.display()
                    ),
                    leaf: contents.leaf.clone().map(Box::new),
                    pkcs12: Some(Box::new(contents)),
                };
            }
            return unreadable("no start line".into());
        }
        Err(e) => return unreadable(e.to_string()),
    };
    let leaf = match x509::summarize(&chain[0]) {
        Ok(s) => s,
        Err(e) => return unreadable(e.to_string()),
    };
    // OpenSSL's security level 2 refuses the certificate itself ("ee key too small").
    if let Some(reason) = weak_key_reason(&leaf) {
        return fail(
            Code::ClientKeyWeak,
            cert_path,
            format!(
                "could not read certificate file \"{}\": ee key too small ({reason})",
                cert_path.display()
            ),
            Some(leaf),
        );
    }

    let Some(key_path) = req.key else {
        return fail(
            Code::ClientKeyMissing,
            cert_path,
            "certificate present, but no private key file configured".into(),
            Some(leaf),
        );
    };
    let meta = match std::fs::metadata(key_path) {
        Ok(m) => m,
        Err(_) => {
            return fail(
                Code::ClientKeyMissing,
                key_path,
                format!(
                    "certificate present, but not private key file \"{}\"",
                    key_path.display()
                ),
                Some(leaf),
            )
        }
    };
    if !meta.is_file() {
        return fail(
            Code::ClientKeyUnreadable,
            key_path,
            format!(
                "private key file \"{}\" is not a regular file",
                key_path.display()
            ),
            Some(leaf),
        );
    }
    // libpq never compares the owner with the current user; it only treats root specially.
    let forbidden = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if meta.permissions().mode() & forbidden != 0 {
        return fail(
            Code::ClientKeyPermissions,
            key_path,
            format!(
                "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
                key_path.display()
            ),
            Some(leaf),
        );
    }
    let key_bytes = match read_bounded(key_path) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                Code::ClientKeyUnreadable,
                key_path,
                format!(
                    "could not load private key file \"{}\": {e}",
                    key_path.display()
                ),
                Some(leaf),
            )
        }
    };
    let encrypted = is_encrypted_key(&key_bytes);
    let pkey = match parse_private_key(&key_bytes, req.sslpassword) {
        Ok(k) => k,
        Err(reason) => {
            let (code, reason) = match (encrypted, req.sslpassword) {
                (true, None) => (Code::ClientKeyEncrypted, "the key is encrypted and no sslpassword was given (psql would prompt; a script fails with \"processing error\")".to_string()),
                (true, Some(_)) => (Code::ClientKeyEncrypted, "bad decrypt (the sslpassword does not decrypt this key)".to_string()),
                (false, _) => (Code::ClientKeyUnreadable, reason),
            };
            return fail(
                code,
                key_path,
                format!(
                    "could not load private key file \"{}\": {reason}",
                    key_path.display()
                ),
                Some(leaf),
            );
        }
    };
    let matches = X509::from_der(&chain[0])
        .ok()
        .and_then(|c| c.public_key().ok())
        .is_some_and(|public| public.public_eq(&pkey));
    if !matches {
        return fail(
            Code::ClientKeyMismatch,
            key_path,
            format!(
                "could not load private key file \"{}\": key values mismatch (the key does not belong to the certificate {})",
                key_path.display(),
                leaf.subject
            ),
            Some(leaf),
        );
    }
    let Ok(pkcs8) = pkey.private_key_to_pkcs8() else {
        return fail(
            Code::ClientKeyUnreadable,
            key_path,
            format!(
                "could not load private key file \"{}\": unsupported key type",
                key_path.display()
            ),
            Some(leaf),
        );
    };
    ClientIdentity::Loaded(Box::new(ClientMaterial {
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        chain: chain.into_iter().map(CertificateDer::from).collect(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
        leaf,
        key_was_encrypted: encrypted,
    }))
}

/// Below OpenSSL security level 2: RSA/DSA under 2048 bits, EC under 224.
pub fn weak_key_reason(cert: &CertSummary) -> Option<String> {
    let weak = (cert.key.starts_with("RSA") && cert.key_bits < 2048)
        || (cert.key.starts_with("EC") && cert.key_bits > 0 && cert.key_bits < 224);
    weak.then(|| {
        format!(
            "{} bits, security level 2 needs RSA 2048 / EC 224",
            cert.key_bits
        )
    })
}

fn is_encrypted_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN") {
        return text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED");
    }
    looks_like_encrypted_pkcs8_der(bytes)
}

fn looks_like_encrypted_pkcs8_der(bytes: &[u8]) -> bool {
    // OID 1.2.840.113549.1.5.13 (PBES2) or 1.2.840.113549.1.12.1.x (PKCS#12 PBE).
    let pbes2 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    let pkcs12_pbe = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
    bytes
        .windows(9)
        .take(64)
        .any(|w| w == pbes2 || w == pkcs12_pbe)
}

/// PEM (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8, legacy Proc-Type), then DER, as libpq tries them.
fn parse_private_key(bytes: &[u8], password: Option<&Secret>) -> Result<PKey<Private>, String> {
    let pass = password.map(|p| p.bytes()).unwrap_or_default();
    let pass = pass.as_slice();
    if String::from_utf8_lossy(bytes).contains("-----BEGIN") {
        return PKey::private_key_from_pem_passphrase(bytes, pass)
            .map_err(|_| "unsupported".to_string());
    }
    PKey::private_key_from_der(bytes)
        .or_else(|_| PKey::private_key_from_pkcs8_passphrase(bytes, pass))
        .map_err(|_| "unsupported".to_string())
}

/// Opens a PKCS#12 bundle (OpenSSL 3 default or legacy RC2/3DES) to report what it holds.
fn open_pkcs12(path: &Path, bytes: &[u8], password: Option<&Secret>) -> Option<Pkcs12Contents> {
    let p12 = openssl::pkcs12::Pkcs12::from_der(bytes).ok()?;
    // Legacy bundles (RC2-40, as Java and OpenSSL 1.x write them) need the legacy provider.
    let _legacy = openssl::provider::Provider::try_load(None, "legacy", true).ok();
    let pass = password.map(|p| p.expose()).unwrap_or("");
    Some(match p12.parse2(pass) {
        Ok(parsed) => Pkcs12Contents {
            path: path.to_path_buf(),
            leaf: parsed
                .cert
                .as_ref()
                .and_then(|c| c.to_der().ok())
                .and_then(|d| x509::summarize(&d).ok()),
            ca_count: parsed.ca.as_ref().map(|s| s.len()).unwrap_or(0),
            has_key: parsed.pkey.is_some(),
            error: None,
        },
        Err(_) => Pkcs12Contents {
            path: path.to_path_buf(),
            leaf: None,
            ca_count: 0,
            has_key: false,
            error: Some(if password.is_some() {
                "the sslpassword does not open the bundle (mac verify failure)".into()
            } else {
                "the bundle is password-protected; give the password with --sslpassword to inspect it".into()
            }),
        },
    })
}
