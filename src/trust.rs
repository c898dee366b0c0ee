//! The client's local TLS material as libpq loads it (root file, CRL, client certificate and
//! key), and the server chain judged by OpenSSL exactly as libpq's OpenSSL judges it: no
//! partial chains, every date checked, CRLs for the whole chain once one is loaded, the
//! limits of security level 2. The verification time is a parameter, never the clock.

use std::path::{Path, PathBuf};

use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509PurposeId, X509StoreContext, X509};

use crate::plan::RootSpec;

/// Files larger than this are not certificates; refuse rather than read gigabytes.
pub const MAX_PEM_FILE: u64 = 4 << 20;

/// The root certificates, as libpq would find them.
#[derive(Debug, Clone)]
pub enum RootState {
    /// No file at the path: verification is off for allow/prefer/require, and verify-* fail.
    Absent { path: Option<PathBuf> },
    Loaded {
        source: RootSource,
        /// DER of each certificate, in file order.
        certs: Vec<Vec<u8>>,
    },
    /// Present but unusable: a client-side set-up failure for every TLS attempt.
    Unreadable { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    File(PathBuf),
    System,
}

impl RootState {
    pub fn is_loaded(&self) -> bool {
        matches!(self, RootState::Loaded { .. })
    }
}

/// The CRLs that loaded (libpq silently ignores what does not): a file, a hashed directory
/// (`openssl rehash` names, read by OpenSSL when a certificate's issuer is looked up), or both.
/// Either one switches on CRL checks for the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlState {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

impl CrlState {
    /// The CRL locations, for evidence.
    pub fn evidence(&self) -> Vec<crate::evidence::Evidence> {
        use crate::evidence::{Evidence, Value};
        let mut out = Vec::new();
        if let Some(file) = &self.file {
            out.push(Evidence::new("crl_file", Value::path(file)));
        }
        if let Some(dir) = &self.dir {
            out.push(Evidence::new("crl_dir", Value::path(dir)));
        }
        out
    }
}

/// Why a certificate file yields no certificates.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error("bad certificate in PEM: {0}")]
    BadCertificate(String),
}

/// Reads a PEM file with a size bound, naming the path in every error.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, PemError> {
    Ok(crate::files::read_limited(path, MAX_PEM_FILE)?)
}

/// At most this many files are read from the certificate directories of sslrootcert=system.
const MAX_SYSTEM_CERT_FILES: usize = 4096;

/// OpenSSL's default verify paths, as `SSL_CTX_set_default_verify_paths` finds them:
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` (colon-separated) when set, else the library's
/// compiled-in file and directory.
fn default_verify_paths() -> (PathBuf, Vec<PathBuf>) {
    let compiled = |p: *const libc::c_char| -> String {
        if p.is_null() {
            return String::new();
        }
        // SAFETY: OpenSSL returns a pointer to a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    };
    let file = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        // SAFETY: no preconditions; returns static storage.
        .unwrap_or_else(|| {
            PathBuf::from(compiled(unsafe {
                openssl_sys::X509_get_default_cert_file()
            }))
        });
    let dirs = std::env::var_os("SSL_CERT_DIR")
        .map(|v| std::env::split_paths(&v).collect())
        // SAFETY: as above.
        .unwrap_or_else(|| {
            vec![PathBuf::from(compiled(unsafe {
                openssl_sys::X509_get_default_cert_dir()
            }))]
        });
    (file, dirs)
}

/// The certificates of sslrootcert=system: OpenSSL's default file and the hashed files
/// (`<hash>.<n>`) of its directories, each read through the bounded, non-blocking reader.
fn load_system_roots() -> RootState {
    let (file, dirs) = default_verify_paths();
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    if std::fs::metadata(&file).is_ok() {
        match read_bounded(&file).and_then(|b| pem_certificates(&b)) {
            Ok(found) => certs.extend(found),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    let hashed = |name: &str| {
        name.split_once('.').is_some_and(|(h, n)| {
            h.len() == 8
                && h.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let mut read = 0;
    for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !hashed(&name.to_string_lossy()) {
                continue;
            }
            read += 1;
            if read > MAX_SYSTEM_CERT_FILES {
                problems.push(format!(
                    "{}: more than {MAX_SYSTEM_CERT_FILES} certificate files; the rest were not read",
                    dir.display()
                ));
                break;
            }
            if let Ok(found) = read_bounded(&entry.path()).and_then(|b| pem_certificates(&b)) {
                certs.extend(found);
            }
        }
    }
    certs.sort();
    certs.dedup();
    if certs.is_empty() {
        let detail = if problems.is_empty() {
            format!(
                "no certificates found in {} or {}",
                file.display(),
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            )
        } else {
            problems.join("; ")
        };
        return RootState::Unreadable {
            path: PathBuf::from("system"),
            reason: format!(
                "could not load system root certificate paths: {detail} (set SSL_CERT_FILE or SSL_CERT_DIR)"
            ),
        };
    }
    RootState::Loaded {
        source: RootSource::System,
        certs,
    }
}

/// PEM certificates in a file, in order. Fails with OpenSSL's words when there are none.
pub fn pem_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..].find("-----").map(|i| i + 11).unwrap_or(11);
        let label = &block[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            break;
        };
        let pem = &block[..end + end_marker.len()];
        if label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE" {
            let cert = X509::from_pem(pem.as_bytes())
                .map_err(|e| PemError::BadCertificate(e.to_string()))?;
            out.push(
                cert.to_der()
                    .map_err(|e| PemError::BadCertificate(e.to_string()))?,
            );
        }
        rest = &block[end + end_marker.len()..];
    }
    Ok(out)
}

fn has_crl(bytes: &[u8]) -> bool {
    bytes
        .windows(25)
        .any(|w| w == b"-----BEGIN X509 CRL-----\n")
        || {
            let t = String::from_utf8_lossy(bytes);
            t.contains("-----BEGIN X509 CRL-----")
        }
}

/// libpq's root-file step: stat, then load; `system` loads the system's roots.
pub fn load_roots(spec: &RootSpec) -> RootState {
    match spec {
        RootSpec::Unknown => RootState::Absent { path: None },
        RootSpec::System => load_system_roots(),
        RootSpec::File(path) => {
            if std::fs::metadata(path).is_err() {
                return RootState::Absent {
                    path: Some(path.clone()),
                };
            }
            let bytes = match read_bounded(path) {
                Ok(b) => b,
                Err(e) => {
                    return RootState::Unreadable {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                }
            };
            match pem_certificates(&bytes) {
                Ok(certs) if !certs.is_empty() => RootState::Loaded {
                    source: RootSource::File(path.clone()),
                    certs,
                },
                Ok(_) if has_crl(&bytes) => RootState::Loaded {
                    source: RootSource::File(path.clone()),
                    certs: Vec::new(),
                },
                Ok(_) => RootState::Unreadable {
                    path: path.clone(),
                    reason: "no certificate or crl found".into(),
                },
                Err(e) => RootState::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            }
        }
    }
}

/// What became of the CRL file: libpq loads it only when a root file loaded, and silently
/// ignores one that does not load (revocation is then not checked at all).
#[derive(Debug, Clone)]
pub enum CrlOutcome {
    NotUsed,
    Loaded(CrlState),
    Ignored { path: PathBuf, reason: String },
}

/// libpq's `X509_STORE_load_locations(store, sslcrl, sslcrldir)`: the file must load (or
/// nothing does, and the directory is not consulted either); a directory is added without
/// being read, even when it does not exist, and from then on every certificate in the chain
/// needs a CRL.
pub fn load_crl(file: Option<&Path>, dir: Option<&Path>, roots: &RootState) -> CrlOutcome {
    if !roots.is_loaded() {
        return CrlOutcome::NotUsed;
    }
    let file = match file {
        None => None,
        Some(path) => match load_crl_file(path) {
            CrlOutcome::Loaded(_) => Some(path.to_path_buf()),
            other => return other,
        },
    };
    if file.is_none() && dir.is_none() {
        return CrlOutcome::NotUsed;
    }
    CrlOutcome::Loaded(CrlState {
        file,
        dir: dir.map(Path::to_path_buf),
    })
}

fn load_crl_file(path: &Path) -> CrlOutcome {
    if std::fs::metadata(path).is_err() {
        return CrlOutcome::NotUsed;
    }
    let ignored = |reason: String| CrlOutcome::Ignored {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => return ignored(e.to_string()),
    };
    if !has_crl(&bytes) {
        return ignored("no PEM CRL (-----BEGIN X509 CRL-----) in the file".into());
    }
    let loaded = X509StoreBuilder::new().ok().and_then(|mut builder| {
        let lookup = builder.add_lookup(X509Lookup::file()).ok()?;
        lookup
            .load_crl_file(path, openssl::ssl::SslFiletype::PEM)
            .ok()
    });
    match loaded {
        Some(_) => CrlOutcome::Loaded(CrlState {
            file: Some(path.to_path_buf()),
            dir: None,
        }),
        None => ignored("OpenSSL could not parse the CRL".into()),
    }
}

/// Why OpenSSL refused the chain, with the certificate it was looking at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    pub kind: ChainFailureKind,
    /// OpenSSL's verify error number and text, e.g. 10 "certificate has expired".
    pub openssl_code: i32,
    pub openssl_text: String,
    /// Depth in the chain: 0 is the server's own certificate.
    pub depth: u32,
    /// DER of the certificate at that depth, when OpenSSL had one.
    pub cert: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainFailureKind {
    Expired,
    NotYetValid,
    UnknownCa,
    Revoked,
    CrlIncomplete,
    WeakKey,
    WrongPurpose,
    Other,
}

/// Verifies the chain the server sent against the loaded roots (and CRL), at `now`.
pub fn verify_chain(
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    crl: Option<&CrlState>,
    now: i64,
) -> Result<(), ChainFailure> {
    let other = |text: String| ChainFailure {
        kind: ChainFailureKind::Other,
        openssl_code: -1,
        openssl_text: text,
        depth: 0,
        cert: None,
    };
    let leaf_der = chain
        .first()
        .ok_or_else(|| other("the server sent no certificate".into()))?;
    let leaf = X509::from_der(leaf_der)
        .map_err(|e| other(format!("unparseable server certificate: {e}")))?;
    let mut untrusted = openssl::stack::Stack::new().map_err(|e| other(e.to_string()))?;
    for der in chain.iter().skip(1) {
        if let Ok(cert) = X509::from_der(der) {
            untrusted.push(cert).map_err(|e| other(e.to_string()))?;
        }
    }
    let mut builder = X509StoreBuilder::new().map_err(|e| other(e.to_string()))?;
    for der in roots {
        if let Ok(cert) = X509::from_der(der) {
            // Duplicates are harmless; OpenSSL reports them as errors we can ignore.
            let _ = builder.add_cert(cert);
        }
    }
    if let Some(crl) = crl {
        if let Some(file) = &crl.file {
            let lookup = builder
                .add_lookup(X509Lookup::file())
                .map_err(|e| other(e.to_string()))?;
            lookup
                .load_crl_file(file, openssl::ssl::SslFiletype::PEM)
                .map_err(|e| other(e.to_string()))?;
        }
        if let Some(dir) = &crl.dir {
            let lookup = builder
                .add_lookup(X509Lookup::hash_dir())
                .map_err(|e| other(e.to_string()))?;
            lookup
                .add_dir(&dir.to_string_lossy(), openssl::ssl::SslFiletype::PEM)
                .map_err(|e| other(e.to_string()))?;
        }
        builder
            .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
            .map_err(|e| other(e.to_string()))?;
    }
    // OpenSSL's TLS client verifies with the "ssl_server" purpose and the security level.
    builder
        .set_purpose(X509PurposeId::SSL_SERVER)
        .map_err(|e| other(e.to_string()))?;
    let mut param = X509VerifyParam::new().map_err(|e| other(e.to_string()))?;
    param.set_time(now as libc::time_t);
    param.set_auth_level(2);
    builder
        .set_param(&param)
        .map_err(|e| other(e.to_string()))?;
    let store = builder.build();

    let mut ctx = X509StoreContext::new().map_err(|e| other(e.to_string()))?;
    let outcome = ctx
        .init(&store, &leaf, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let err = c.error();
            let depth = c.error_depth();
            let cert = c.current_cert().and_then(|x| x.to_der().ok());
            Ok((
                ok,
                err.as_raw(),
                err.error_string().to_string(),
                depth,
                cert,
            ))
        })
        .map_err(|e| other(e.to_string()))?;
    let (ok, code, text, depth, cert) = outcome;
    if ok {
        return Ok(());
    }
    Err(ChainFailure {
        kind: classify(code),
        openssl_code: code,
        openssl_text: text,
        depth,
        cert,
    })
}

fn classify(code: i32) -> ChainFailureKind {
    use openssl_sys as ffi;
    match code {
        ffi::X509_V_ERR_CERT_HAS_EXPIRED => ChainFailureKind::Expired,
        ffi::X509_V_ERR_CERT_NOT_YET_VALID => ChainFailureKind::NotYetValid,
        ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | ffi::X509_V_ERR_CERT_UNTRUSTED
        | ffi::X509_V_ERR_INVALID_CA
        | ffi::X509_V_ERR_CERT_SIGNATURE_FAILURE => ChainFailureKind::UnknownCa,
        ffi::X509_V_ERR_CERT_REVOKED => ChainFailureKind::Revoked,
        ffi::X509_V_ERR_UNABLE_TO_GET_CRL
        | ffi::X509_V_ERR_CRL_HAS_EXPIRED
        | ffi::X509_V_ERR_CRL_NOT_YET_VALID
        | ffi::X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER => ChainFailureKind::CrlIncomplete,
        ffi::X509_V_ERR_EE_KEY_TOO_SMALL
        | ffi::X509_V_ERR_CA_KEY_TOO_SMALL
        | ffi::X509_V_ERR_CA_MD_TOO_WEAK => ChainFailureKind::WeakKey,
        ffi::X509_V_ERR_INVALID_PURPOSE => ChainFailureKind::WrongPurpose,
        _ => ChainFailureKind::Other,
    }
}

/// The verdict of webpki (what rustls-based clients such as tokio-postgres-rustls and
/// sqlx use) on a chain OpenSSL accepted: `Some(reason)` when webpki would refuse it.
pub fn webpki_refusal(
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    host: Option<&str>,
    now: i64,
) -> Option<String> {
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    let leaf = CertificateDer::from(chain.first()?.as_slice());
    let anchors: Vec<_> = roots
        .iter()
        .filter_map(|d| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice()))
                .ok()
                .map(|a| a.to_owned())
        })
        .collect();
    let intermediates: Vec<CertificateDer> = chain
        .iter()
        .skip(1)
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let ee = match webpki::EndEntityCert::try_from(&leaf) {
        Ok(ee) => ee,
        Err(e) => return Some(format!("{e:?}")),
    };
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    if let Err(e) = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        time,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    ) {
        return Some(format!("{e:?}"));
    }
    if let Some(host) = host {
        let name = ServerName::try_from(host).ok()?;
        if let Err(e) = ee.verify_is_valid_for_subject_name(&name) {
            return Some(format!("{e:?}"));
        }
    }
    None
}
