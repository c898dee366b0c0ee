//! The client's own files, loaded as libpq loads them before it connects: the root
//! certificates, the CRLs and the client certificate and key. What fails here fails every
//! TLS attempt the same way, so it is loaded once per target.

use crate::catalogue::Code;
use crate::client_cert::{self, ClientIdentity, ClientRequest};
use crate::eval::client_cert::ClientView;
use crate::eval::LocalSetup;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::plan::{CertMode, Plan};
use crate::trust;

/// Loads the client's files as libpq would, before any connection.
pub fn local_setup(plan: &Plan) -> (LocalSetup, ClientIdentity) {
    let roots = trust::load_roots(&plan.root);
    let (crl, crl_ignored) =
        match trust::load_crl(plan.crl.as_deref(), plan.crl_dir.as_deref(), &roots) {
            trust::CrlOutcome::Loaded(state) => (Some(state), None),
            trust::CrlOutcome::Ignored { path, reason } => (None, Some((path, reason))),
            trust::CrlOutcome::NotUsed => (None, None),
        };
    let identity = client_cert::load(&ClientRequest {
        cert: plan.cert.as_deref(),
        key: plan.key.as_deref(),
        cert_explicit: plan.cert_explicit,
        sslpassword: plan.sslpassword.as_ref(),
        cert_mode_disabled: plan.cert_mode == CertMode::Disable,
    });
    let client_failure = match &identity {
        ClientIdentity::Failed {
            code,
            path,
            message,
            leaf,
            pkcs12,
        } => {
            let fix = match pkcs12 {
                Some(_) => format!(
                    "libpq reads only PEM: `openssl pkcs12 -in {0} -clcerts -nokeys -out postgresql.crt` and `openssl pkcs12 -in {0} -nocerts -nodes -out postgresql.key`, then point sslcert/sslkey at them",
                    path.display()
                ),
                None => client_fix(*code, path),
            };
            let mut problem = Problem::new(*code, message.clone())
                .with("file", Value::path(path))
                .fix(fix);
            if let Some(leaf) = leaf {
                problem = problem.with("certificate_subject", Value::name(leaf.subject.clone()));
            }
            Some(problem)
        }
        _ => None,
    };
    let client = ClientView {
        leaf: identity.leaf().cloned(),
        loaded: matches!(identity, ClientIdentity::Loaded(_)),
        none: match &identity {
            ClientIdentity::NotConfigured(why) => Some(why.clone()),
            _ => None,
        },
        pkcs12: match &identity {
            ClientIdentity::Failed { pkcs12, .. } => pkcs12.as_deref().cloned(),
            _ => None,
        },
        cert_mode: Some(plan.cert_mode),
    };
    (
        LocalSetup {
            roots,
            system_roots: plan.root == crate::plan::RootSpec::System,
            crl,
            client_failure,
            client,
            crl_ignored,
        },
        identity,
    )
}

fn client_fix(code: Code, path: &std::path::Path) -> String {
    match code {
        Code::ClientKeyPermissions => format!("chmod 0600 {}", path.display()),
        Code::ClientKeyMissing => format!(
            "put the private key next to the certificate ({}), or set sslkey=/path/to/key",
            path.display()
        ),
        Code::ClientKeyEncrypted => format!(
            "give the passphrase as sslpassword=... in a service file (~/.pg_service.conf, chmod 0600; then service=NAME) rather than on the command line, where `ps` shows it (libpq reads no environment variable for it); or store the key decrypted: `openssl pkey -in {0} -out {0}.plain && chmod 0600 {0}.plain`",
            path.display()
        ),
        Code::ClientKeyMismatch => "give the key that belongs to the certificate; compare `openssl x509 -in CERT -noout -pubkey` with `openssl pkey -in KEY -pubout`".into(),
        Code::ClientKeyWeak => "issue a new client key and certificate with RSA 2048+ or EC P-256 (Debian's OpenSSL runs at security level 2)".into(),
        _ => format!(
            "the file must hold a PEM certificate (and a PEM key); check it with `openssl x509 -in {} -noout -subject`",
            path.display()
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::testing::ossl_pki::{KeyKind, OsslCa, Spec};
    use crate::testing::pki::{write_file, Ca, LeafSpec};

    /// A client certificate and key on disk, as libpq would find them, per local-file code.
    fn table(dir: &Path) -> Vec<(&'static str, PathBuf, PathBuf, Code)> {
        let ca = Ca::root("Local Root");
        let alice = ca.issue(&LeafSpec::client("alice"));
        let bob = ca.issue(&LeafSpec::client("bob"));
        let weak = OsslCa::from_rcgen(&ca).issue(&Spec::v1("alice").key(KeyKind::Rsa1024));
        let encrypted = openssl::pkey::PKey::private_key_from_pem(alice.key_pem.as_bytes())
            .unwrap()
            .private_key_to_pem_pkcs8_passphrase(
                openssl::symm::Cipher::aes_256_cbc(),
                b"not-the-passphrase",
            )
            .unwrap();
        let file = |name: &str, contents: &[u8], mode: u32| write_file(dir, name, contents, mode);
        let cert = file("alice.crt", alice.cert_pem.as_bytes(), 0o644);
        let key = file("alice.key", alice.key_pem.as_bytes(), 0o600);
        vec![
            (
                "a certificate file with no certificate",
                file("junk.crt", b"not a certificate\n", 0o644),
                key.clone(),
                Code::ClientCertUnreadable,
            ),
            (
                "no key beside the certificate",
                cert.clone(),
                dir.join("missing.key"),
                Code::ClientKeyMissing,
            ),
            (
                "a key file with no key",
                cert.clone(),
                file("junk.key", b"junk\n", 0o600),
                Code::ClientKeyUnreadable,
            ),
            (
                "a key anyone may read",
                cert.clone(),
                file("open.key", alice.key_pem.as_bytes(), 0o644),
                Code::ClientKeyPermissions,
            ),
            (
                "an encrypted key",
                cert.clone(),
                file("enc.key", &encrypted, 0o600),
                Code::ClientKeyEncrypted,
            ),
            (
                "bob's key",
                cert.clone(),
                file("bob.key", bob.key_pem.as_bytes(), 0o600),
                Code::ClientKeyMismatch,
            ),
            (
                "a 1024-bit RSA certificate",
                file("weak.crt", weak.cert_pem.as_bytes(), 0o644),
                file("weak.key", weak.key_pem.as_bytes(), 0o600),
                Code::ClientKeyWeak,
            ),
        ]
    }

    fn load(cert: &Path, key: &Path) -> Option<Code> {
        match client_cert::load(&ClientRequest {
            cert: Some(cert),
            key: Some(key),
            cert_explicit: true,
            sslpassword: None,
            cert_mode_disabled: false,
        }) {
            ClientIdentity::Failed { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn codes_produced() -> BTreeSet<Code> {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path())
            .into_iter()
            .filter_map(|(_, cert, key, _)| load(&cert, &key))
            .collect()
    }

    #[test]
    fn every_file_yields_its_code() {
        let dir = tempfile::tempdir().unwrap();
        for (name, cert, key, code) in table(dir.path()) {
            assert_eq!(load(&cert, &key), Some(code), "{name}");
        }
    }
}
