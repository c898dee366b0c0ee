//! The client's own files, loaded as libpq loads them before it connects: the root
//! certificates, the CRLs and the client certificate and key. What fails here fails every
//! TLS attempt the same way, so it is loaded once per target.

use crate::catalogue::Code;
use crate::client_cert::{self, ClientIdentity, ClientRequest};
use crate::eval::client::ClientView;
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
