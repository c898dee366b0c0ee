//! `pgtls-doctor pki DIR`: a PKI for PostgreSQL that avoids what the guides get wrong. A CA;
//! a server certificate with subjectAltNames and serverAuth; client certificates whose CN is
//! the user, with clientAuth, also as PKCS#8 DER for pgJDBC; ECDSA P-256 keys; explicit
//! validity; every key 0600 in a directory only its owner can enter. Then the lines that
//! install and use them.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// What to make.
#[derive(Debug, Clone)]
pub struct PkiRequest {
    pub dir: PathBuf,
    /// DNS names for the server certificate's subjectAltName (the first is its CN).
    pub server_names: Vec<String>,
    pub server_addresses: Vec<IpAddr>,
    /// One client certificate per user (CN = user).
    pub clients: Vec<String>,
    /// Validity of the server and client certificates.
    pub days: u32,
    pub ca_days: u32,
    /// Encrypt the client keys with this passphrase (read from a file, never an argument).
    pub passphrase: Option<crate::plan::Secret>,
    /// Where the server's files go, for the printed commands (the data directory).
    pub server_dir: String,
    /// The port the printed conninfo names.
    pub port: u16,
    /// The network the printed pg_hba.conf line admits.
    pub client_network: String,
}

/// Why no PKI was written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("refusing to write keys into \"{}\": {why}", dir.display())]
    UnsafeDirectory { dir: PathBuf, why: String },
    #[error("\"{}\" exists already; the doctor never overwrites a key or certificate (choose an empty directory)", path.display())]
    Exists { path: PathBuf },
    #[error("could not write \"{}\": {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Request(String),
    #[error("could not make the certificates: {0}")]
    Generate(String),
}

/// What was written, and the instructions printed for it.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub instructions: String,
}

/// A user name as a file name: what a CN may hold that a path may not is refused.
fn file_stem(user: &str) -> Result<&str, PkiError> {
    let ok = !user.is_empty()
        && user != "."
        && user != ".."
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(user)
    } else {
        Err(PkiError::Request(format!(
            "invalid client user name \"{user}\": use letters, digits, _ - . @"
        )))
    }
}

/// The longest validity `pki` issues, in days: far past any sane certificate, and far below
/// what would overflow a date.
const MAX_DAYS: u32 = 36_500;

/// Each client's files are `<user>.crt/.key/.pk8` beside ca.* and server.*: a user named
/// "ca" or "server", or named twice, would collide; refused before anything is written.
fn check_client_names(clients: &[String]) -> Result<(), PkiError> {
    let mut seen = std::collections::BTreeSet::new();
    for user in clients {
        let stem = file_stem(user)?;
        if matches!(stem, "ca" | "server") {
            return Err(PkiError::Request(format!(
                "client user name \"{user}\" would overwrite the {stem}.* files: choose another name for its certificate"
            )));
        }
        if !seen.insert(stem) {
            return Err(PkiError::Request(format!(
                "client user \"{user}\" is named twice"
            )));
        }
    }
    Ok(())
}

/// The directory: created 0700 when absent; an existing one must be ours and closed to
/// everyone else (not /tmp itself, not a shared or world-writable place).
fn prepare_dir(dir: &Path) -> Result<(), PkiError> {
    let unsafe_dir = |why: String| PkiError::UnsafeDirectory {
        dir: dir.to_path_buf(),
        why,
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|source| PkiError::Write {
                path: dir.to_path_buf(),
                source,
            }),
        Err(source) => Err(PkiError::Write {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(unsafe_dir("it is not a directory".into())),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o002 != 0 {
                return Err(unsafe_dir(format!(
                    "anyone may write there (mode {mode:04o}); give a new directory, e.g. ~/pgtls-pki"
                )));
            }
            if meta.uid() != unsafe { libc::geteuid() } {
                return Err(unsafe_dir("it belongs to another user".into()));
            }
            if mode & 0o077 != 0 {
                return Err(unsafe_dir(format!(
                    "others may enter it (mode {mode:04o}): `chmod 700 {}` first, or give a new directory",
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => PkiError::Exists {
                path: path.to_path_buf(),
            },
            _ => PkiError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    file.write_all(contents)
        .and_then(|_| file.set_permissions(fs::Permissions::from_mode(mode)))
        .map_err(|source| PkiError::Write {
            path: path.to_path_buf(),
            source,
        })
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn generated(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generated)
}

/// A certificate (PEM) and its key.
pub(crate) struct Made {
    pub cert_pem: String,
    pub key: KeyPair,
}

/// A leaf (CA:FALSE) signed by `issuer`, valid from `from` to `until` (offsets from now).
pub(crate) fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    purpose: ExtendedKeyUsagePurpose,
    from: Duration,
    until: Duration,
) -> Result<Made, PkiError> {
    let now = OffsetDateTime::now_utc();
    let key = new_key()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = now + from;
    p.not_after = now + until;
    p.is_ca = IsCa::ExplicitNoCa;
    p.subject_alt_names = sans;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![purpose];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    let cert = p.signed_by(&key, issuer).map_err(generated)?;
    Ok(Made {
        cert_pem: cert.pem(),
        key,
    })
}

/// A CA that signs leaves only (path length 0), valid for `days`; its certificate (PEM),
/// its key (PEM) and the issuer to sign with.
pub(crate) fn ca(
    cn: &str,
    days: u32,
) -> Result<(Issuer<'static, KeyPair>, String, String), PkiError> {
    let now = OffsetDateTime::now_utc();
    let key = new_key()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn(cn);
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(i64::from(days));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.key_identifier_method = KeyIdMethod::Sha256;
    let cert = ca.self_signed(&key).map_err(generated)?;
    let key_pem = key.serialize_pem();
    Ok((Issuer::new(ca, key), cert.pem(), key_pem))
}

/// An hour back, against clocks that lag a little, to `days` ahead.
fn validity(days: u32) -> (Duration, Duration) {
    (-Duration::hours(1), Duration::days(i64::from(days)))
}

/// The client key as libpq reads it (PEM) and as pgJDBC reads it (PKCS#8 DER), encrypted
/// with the passphrase when there is one.
fn client_key_files(
    key: &KeyPair,
    passphrase: Option<&[u8]>,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let Some(pass) = passphrase else {
        return Ok((key.serialize_pem().into_bytes(), key.serialize_der()));
    };
    let pkey = openssl::pkey::PKey::private_key_from_der(&key.serialize_der())
        .map_err(|e| PkiError::Generate(e.to_string()))?;
    let cipher = openssl::symm::Cipher::aes_256_cbc();
    let pem = pkey
        .private_key_to_pem_pkcs8_passphrase(cipher, pass)
        .map_err(|e| PkiError::Generate(e.to_string()))?;
    let der = pkey
        .private_key_to_pkcs8_passphrase(cipher, pass)
        .map_err(|e| PkiError::Generate(e.to_string()))?;
    Ok((pem, der))
}

/// Writes every planned file, each new (never over an existing one); when one fails, the
/// ones written before it are removed again.
fn write_all_or_nothing(
    dir: &Path,
    planned: &[(String, Vec<u8>, u32)],
) -> Result<Vec<PathBuf>, PkiError> {
    let mut written = Vec::new();
    for (name, contents, mode) in planned {
        let path = dir.join(name);
        if let Err(e) = write_new(&path, contents, *mode) {
            for done in &written {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
        written.push(path);
    }
    Ok(written)
}

pub fn make(req: &PkiRequest) -> Result<Written, PkiError> {
    if req.server_names.is_empty() && req.server_addresses.is_empty() {
        return Err(PkiError::Request(
            "name the server: --server-name db.example.com and/or --server-ip 10.0.0.5 (the names clients put in host=)".into(),
        ));
    }
    if req.days == 0 || req.ca_days < req.days || req.ca_days > MAX_DAYS {
        return Err(PkiError::Request(format!(
            "invalid validity: --days {} must be at least 1 and no more than --ca-days {}, which may be at most {MAX_DAYS} (100 years)",
            req.days, req.ca_days
        )));
    }
    check_client_names(&req.clients)?;
    prepare_dir(&req.dir)?;
    let (issuer, ca_pem, ca_key_pem) = ca("pgtls-doctor PostgreSQL CA", req.ca_days)?;

    let mut sans = Vec::new();
    for name in &req.server_names {
        let ia5 = name.clone().try_into().map_err(|_| {
            PkiError::Request(format!("invalid server name \"{name}\" for a certificate"))
        })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(req.server_addresses.iter().map(|a| SanType::IpAddress(*a)));
    let server_cn = req
        .server_names
        .first()
        .cloned()
        .unwrap_or_else(|| req.server_addresses[0].to_string());
    let (from, until) = validity(req.days);
    let server = leaf(
        &issuer,
        &server_cn,
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
        from,
        until,
    )?;

    // Everything is made before anything is written: a failure leaves no half PKI.
    let passphrase = req.passphrase.as_ref().map(|p| p.bytes());
    let mut planned: Vec<(String, Vec<u8>, u32)> = vec![
        ("ca.crt".into(), ca_pem.into_bytes(), 0o644),
        ("ca.key".into(), ca_key_pem.into_bytes(), 0o600),
        (
            "server.crt".into(),
            server.cert_pem.clone().into_bytes(),
            0o644,
        ),
        (
            "server.key".into(),
            server.key.serialize_pem().into_bytes(),
            0o600,
        ),
    ];
    for user in &req.clients {
        let made = leaf(
            &issuer,
            user,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            from,
            until,
        )?;
        let (pem, der) = client_key_files(&made.key, passphrase.as_deref())?;
        let stem = file_stem(user)?;
        planned.push((format!("{stem}.crt"), made.cert_pem.into_bytes(), 0o644));
        planned.push((format!("{stem}.key"), pem, 0o600));
        planned.push((format!("{stem}.pk8"), der, 0o600));
    }
    let files = write_all_or_nothing(&req.dir, &planned)?;
    let path = |name: &str| req.dir.join(name);
    let (ca_crt, server_crt, server_key) = (path("ca.crt"), path("server.crt"), path("server.key"));
    let clients: Vec<(String, PathBuf, PathBuf, PathBuf)> = req
        .clients
        .iter()
        .map(|user| {
            (
                user.clone(),
                path(&format!("{user}.crt")),
                path(&format!("{user}.key")),
                path(&format!("{user}.pk8")),
            )
        })
        .collect();

    let instructions = instructions(req, &ca_crt, &server_crt, &server_key, &clients, &server_cn);
    Ok(Written {
        files,
        instructions,
    })
}

fn instructions(
    req: &PkiRequest,
    ca_crt: &Path,
    server_crt: &Path,
    server_key: &Path,
    clients: &[(String, PathBuf, PathBuf, PathBuf)],
    host: &str,
) -> String {
    let to = &req.server_dir;
    let mut out = String::new();
    let d = |p: &Path| p.display().to_string();
    let on_server = |name: &str| format!("{to}/{name}");
    out.push_str(
        "# ca.key signs new certificates: keep it off the database server, and backed up.\n\n",
    );
    out.push_str(&format!(
        "# On the server, as root: the key readable by the postgres user alone (or root:postgres 0640).\n\
         install -o postgres -g postgres -m 0600 {} {}\n\
         install -o postgres -g postgres -m 0644 {} {}\n\
         install -o postgres -g postgres -m 0644 {} {}\n\n",
        shell(&d(server_key)),
        shell(&on_server("server.key")),
        shell(&d(server_crt)),
        shell(&on_server("server.crt")),
        shell(&d(ca_crt)),
        shell(&on_server("root.crt")),
    ));
    out.push_str(&format!(
        "# postgresql.conf (then SELECT pg_reload_conf();)\n\
         ssl = on\n\
         ssl_cert_file = {}\n\
         ssl_key_file = {}\n\
         ssl_ca_file = {}\n\n",
        conf(&on_server("server.crt")),
        conf(&on_server("server.key")),
        conf(&on_server("root.crt")),
    ));
    out.push_str(&format!(
        "# pg_hba.conf: TLS with a client certificate whose CN is the user, nothing in plaintext\n\
         hostssl all all {} cert\n\
         hostnossl all all {} reject\n\n",
        req.client_network, req.client_network
    ));
    let conninfo = |user: &str, crt: &Path, key: &Path| {
        use crate::conninfo::quote;
        format!(
            "host={} port={} user={} dbname=postgres sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            quote(host),
            req.port,
            quote(user),
            quote(&d(ca_crt)),
            quote(&d(crt)),
            quote(&d(key))
        )
    };
    for (user, crt, key, pk8) in clients {
        out.push_str(&format!(
            "# {user}, with libpq (psql, psycopg, ...){}\n\
             psql {}\n\
             # {user}, with pgJDBC\n\
             jdbc:postgresql://{host}:{}/postgres?user={}&sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}\n\n",
            if req.passphrase.is_some() {
                "; the key is encrypted: put sslpassword=... in a service file (chmod 0600), never on the command line"
            } else {
                ""
            },
            shell(&conninfo(user, crt, key)),
            req.port,
            url(user),
            url(&d(ca_crt)),
            url(&d(crt)),
            url(&d(pk8)),
        ));
    }
    let check = match clients.first() {
        Some((user, crt, key, _)) => conninfo(user, crt, key),
        None => format!(
            "host={} port={} user=USER dbname=postgres sslrootcert={}",
            crate::conninfo::quote(host),
            req.port,
            crate::conninfo::quote(&d(ca_crt))
        ),
    };
    out.push_str(&format!(
        "# Check it:\npgtls-doctor {} --sslmode verify-full\n",
        shell(&check)
    ));
    out
}

/// A word for a POSIX shell: as it is when it holds nothing the shell reads, else in single
/// quotes (a quote inside written '\'').
fn shell(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '@' | ':' | ',' | '+' | '=')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A string value for postgresql.conf: in single quotes, a quote inside doubled.
fn conf(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A value in a JDBC URL's query: everything but RFC 3986's unreserved characters and `/`
/// percent-encoded.
fn url(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path) -> PkiRequest {
        PkiRequest {
            dir: dir.to_path_buf(),
            server_names: vec!["db.example.com".into(), "localhost".into()],
            server_addresses: vec!["127.0.0.1".parse().unwrap()],
            clients: vec!["alice".into()],
            days: 365,
            ca_days: 3650,
            passphrase: None,
            server_dir: "/var/lib/postgresql/17/main".into(),
            port: 5432,
            client_network: "0.0.0.0/0".into(),
        }
    }

    #[test]
    fn writes_what_postgresql_and_both_clients_need() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let written = make(&request(&dir)).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for key in ["ca.key", "server.key", "alice.key", "alice.pk8"] {
            let mode = fs::metadata(dir.join(key)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let server = crate::x509::summarize(
            &crate::trust::pem_certificates(&fs::read(dir.join("server.crt")).unwrap()).unwrap()[0],
        )
        .unwrap();
        assert_eq!(server.dns_names, ["db.example.com", "localhost"]);
        assert_eq!(
            server.ip_addresses,
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            server.extended_key_usage.as_deref(),
            Some(&["serverAuth".to_string()][..])
        );
        let days = (server.not_after - server.not_before) / 86_400;
        assert!((365..=366).contains(&days), "{days}");
        let alice = crate::x509::summarize(
            &crate::trust::pem_certificates(&fs::read(dir.join("alice.crt")).unwrap()).unwrap()[0],
        )
        .unwrap();
        assert_eq!(alice.common_name.as_deref(), Some("alice"));
        assert_eq!(
            alice.extended_key_usage.as_deref(),
            Some(&["clientAuth".to_string()][..])
        );
        // pgJDBC's key: PKCS#8 DER of the same key as alice.key.
        let der =
            openssl::pkey::PKey::private_key_from_pkcs8(&fs::read(dir.join("alice.pk8")).unwrap())
                .unwrap();
        let pem =
            openssl::pkey::PKey::private_key_from_pem(&fs::read(dir.join("alice.key")).unwrap())
                .unwrap();
        assert!(der.public_eq(&pem));
        assert!(written
            .instructions
            .contains("install -o postgres -g postgres -m 0600"));
        assert!(written
            .instructions
            .contains("hostssl all all 0.0.0.0/0 cert"));
        assert!(written.files.len() >= 7);
    }

    #[test]
    fn refuses_shared_places_and_never_overwrites() {
        let err = make(&request(Path::new("/tmp"))).unwrap_err();
        assert!(matches!(err, PkiError::UnsafeDirectory { .. }), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(make(&request(&open))
            .unwrap_err()
            .to_string()
            .contains("chmod 700"));
        let dir = tmp.path().join("pki");
        make(&request(&dir)).unwrap();
        let again = make(&request(&dir)).unwrap_err();
        assert!(matches!(again, PkiError::Exists { .. }), "{again}");
        let mut bad = request(&tmp.path().join("other"));
        bad.clients = vec!["../alice".into()];
        assert!(make(&bad).is_err());
    }

    #[test]
    fn encrypts_the_client_keys_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut req = request(&tmp.path().join("pki"));
        req.passphrase = Some(crate::plan::Secret::new("correct horse"));
        let written = make(&req).unwrap();
        let pem = fs::read(req.dir.join("alice.key")).unwrap();
        assert!(String::from_utf8_lossy(&pem).contains("ENCRYPTED PRIVATE KEY"));
        assert!(
            openssl::pkey::PKey::private_key_from_pem_passphrase(&pem, b"correct horse").is_ok()
        );
        let der = fs::read(req.dir.join("alice.pk8")).unwrap();
        assert!(
            openssl::pkey::PKey::private_key_from_pkcs8_passphrase(&der, b"correct horse").is_ok()
        );
        assert!(!written.instructions.contains("correct horse"));
    }
}
