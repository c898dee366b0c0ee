//! Judging the client certificate: the local checks libpq and the server's OpenSSL make, the
//! server's refusal read back into a cause, and the CN/DN comparison the server only logs.

use crate::catalogue::Code;
use crate::catalogue::Severity;
use crate::client_cert::{weak_key_reason, NoCertificate, Pkcs12Contents};
use crate::evidence::{Evidence, Value};
use crate::finding::{Finding, Problem};
use crate::observe::{Alert, TlsAttempt};
use crate::plan::CertMode;
use crate::x509::CertSummary;

use super::prose::{instant, relative};

/// What the client presents (or why nothing), as loaded before connecting.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    /// The certificate, when its file was readable.
    pub leaf: Option<CertSummary>,
    /// Certificate and key loaded: libpq will present them.
    pub loaded: bool,
    pub none: Option<NoCertificate>,
    pub pkcs12: Option<Pkcs12Contents>,
    pub cert_mode: Option<CertMode>,
}

/// The server's CertificateRequest CA names, as text.
pub fn ca_names(tls: &TlsAttempt) -> Option<Vec<String>> {
    use x509_parser::prelude::FromDer;
    tls.client_ca_names.as_ref().map(|names| {
        names
            .iter()
            .map(|der| {
                x509_parser::x509::X509Name::from_der(der)
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_else(|_| "<unparseable name>".into())
            })
            .collect()
    })
}

/// Whether the presented certificate was issued by one of the CAs the server named.
fn issued_by_named_ca(leaf: &CertSummary, names: &[String]) -> bool {
    names
        .iter()
        .any(|n| *n == leaf.issuer || *n == leaf.subject)
}

/// Turns a TLS alert received with a client certificate presented into its cause,
/// combining the alert with what the local checks know (OpenSSL's `ssl_x509err2alert`).
pub fn refusal_problem(
    alert: Alert,
    view: &ClientView,
    tls: &TlsAttempt,
    now: i64,
    after_handshake: bool,
) -> Problem {
    let when = if after_handshake {
        "right after the handshake (TLS 1.3 checks the client certificate after the client's Finished)"
    } else {
        "during the handshake"
    };
    let leaf = view.leaf.as_ref();
    let subject = leaf.map(|l| l.subject.clone()).unwrap_or_default();
    let mut problem = match alert {
        Alert::UnknownCa => {
            let names = ca_names(tls).unwrap_or_default();
            Problem::new(
                Code::ClientCertUnknownCa,
                format!(
                    "the server does not trust the issuer of the client certificate \"{subject}\" (alert unknown_ca {when})"
                ),
            )
            .with("certificate_issuer", Value::name(leaf.map(|l| l.issuer.clone()).unwrap_or_default()))
            .with("server_accepts_issuers", names.join("; "))
            .with(
                "also_possible",
                "OpenSSL sends unknown_ca as well when the server has an ssl_crl_file without a CRL from every CA in your chain (unable to get certificate CRL); the server log says which",
            )
            .fix("sign the client certificate with a CA in the server's ssl_ca_file, or add its CA (and intermediates) to ssl_ca_file and reload; if the CA is an intermediate, put the chain in the sslcert file")
        }
        Alert::CertificateExpired => {
            let until = leaf.map(|l| l.not_after).unwrap_or(now);
            Problem::new(
                Code::ClientCertExpired,
                format!("the client certificate \"{subject}\" expired on {}; the server refused it {when}", instant(until, now)),
            )
            .with("not_after", Value::Time(until))
            .fix("issue a new client certificate (the server's CA must sign it) and replace sslcert/sslkey")
        }
        Alert::CertificateRevoked => Problem::new(
            Code::ClientCertRevoked,
            format!("the server's CRL (ssl_crl_file) revokes the client certificate \"{subject}\" (alert {when})"),
        )
        .with("serial", leaf.map(|l| l.serial.clone()).unwrap_or_default())
        .fix("issue a new client certificate; the revoked one will not be accepted again"),
        Alert::UnsupportedCertificate => Problem::new(
            Code::ClientCertWrongPurpose,
            format!("the server refuses the client certificate \"{subject}\" for TLS client authentication (alert unsupported_certificate {when})"),
        )
        .with(
            "extended_key_usage",
            leaf.and_then(|l| l.extended_key_usage.clone()).map(|e| e.join(", ")).unwrap_or_else(|| "(none)".into()),
        )
        .with(
            "key_usage",
            leaf.and_then(|l| l.key_usage.clone()).map(|e| e.join(", ")).unwrap_or_else(|| "(none)".into()),
        )
        .fix("reissue the certificate with extendedKeyUsage=clientAuth (or without extendedKeyUsage) and keyUsage including digitalSignature"),
        Alert::BadCertificate if leaf.is_some_and(|l| l.not_before > now) => {
            let from = leaf.map(|l| l.not_before).unwrap_or(now);
            Problem::new(
                Code::ClientCertNotYetValid,
                format!("the client certificate \"{subject}\" is not valid until {}; the server refused it {when}", instant(from, now)),
            )
            .with("not_before", Value::Time(from))
            .fix("check the clocks of this machine, the server and the CA that issued the certificate")
        }
        Alert::BadCertificate if leaf.and_then(weak_key_reason).is_some() => Problem::new(
            Code::ClientKeyWeak,
            format!("the server refused the client certificate \"{subject}\": its key is too small for OpenSSL security level 2"),
        )
        .fix("issue a new client key of RSA 2048+ or EC P-256: `openssl req -new -newkey rsa:3072 ...`"),
        other => Problem::new(
            Code::ClientCertRejected,
            format!("the server refused the client certificate \"{subject}\" with alert {other} {when}"),
        )
        .fix("the server log says why (\"could not accept SSL connection: ...\")"),
    };
    problem = problem.with("alert", Value::name(alert.name()));
    if after_handshake {
        problem = problem.with(
            "prefer_note",
            "under TLS 1.3 this arrives after the handshake, so sslmode=prefer does not fall back to plaintext (under TLS 1.2 it would)",
        );
    }
    problem
}

/// The name the server compares with the user (clientname=CN, the default).
pub fn cert_name(view: &ClientView) -> Option<String> {
    view.leaf.as_ref().and_then(|l| l.common_name.clone())
}

/// Evidence for a certificate-name failure: the CN, the user, and whether they differ.
pub fn name_check(problem: Problem, view: &ClientView, user: &str) -> Problem {
    match cert_name(view) {
        Some(cn) => problem
            .with("certificate_cn", Value::name(cn.clone()))
            .with(
                "certificate_dn",
                view.leaf
                    .as_ref()
                    .map(|l| l.subject.clone())
                    .unwrap_or_default(),
            )
            .with("user", Value::name(user.to_string()))
            .with("cn_equals_user", cn == user),
        None => problem.with("certificate_cn", Value::name("(the certificate has no CN)")),
    }
}

/// Why no certificate reached the server, for `connection requires a valid client certificate`.
pub fn why_no_certificate(view: &ClientView, tls: &TlsAttempt) -> String {
    if tls.client_cert_sent {
        return "a certificate was sent, but the server did not accept it as valid".into();
    }
    if let Some(reason) = &tls.client_key_unusable {
        return format!("the key loaded, but the doctor's TLS library cannot sign with it ({reason}); libpq would send it");
    }
    match &view.none {
        Some(NoCertificate::DefaultMissing(p)) => format!(
            "no sslcert was configured and the default {} does not exist",
            p.display()
        ),
        Some(NoCertificate::ExplicitMissing(p)) => format!(
            "sslcert points to {}, which does not exist (libpq then silently sends no certificate)",
            p.display()
        ),
        Some(NoCertificate::CertModeDisabled) => "sslcertmode=disable".into(),
        Some(NoCertificate::NoPath) => "no sslcert and no home directory".into(),
        None => "no certificate was sent".into(),
    }
}

/// Findings from the client certificate that no sslmode cell carries: local checks made
/// before the server decides (warnings), and facts (info).
pub fn local_findings(
    view: &ClientView,
    tls: Option<&TlsAttempt>,
    user: &str,
    now: i64,
    warn_days: i64,
    session_ok: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let warn = |code: Code, summary: String, evidence: Vec<Evidence>, fix: &str| Finding {
        code,
        severity: Severity::Warning,
        summary,
        evidence,
        fix: Some(fix.to_string()),
        modes: vec![],
    };
    if let Some(NoCertificate::ExplicitMissing(path)) = &view.none {
        out.push(Finding {
            code: Code::ClientCertMissing,
            severity: Severity::Info,
            summary: format!("sslcert {} does not exist, so no client certificate is sent (libpq does the same, silently)", path.display()),
            evidence: vec![Evidence::new("sslcert", Value::path(path))],
            fix: Some("point sslcert at the certificate file, or drop the setting if no certificate is needed".into()),
            modes: vec![],
        });
    }
    if let Some(p12) = &view.pkcs12 {
        let mut evidence = vec![Evidence::new("file", Value::path(&p12.path))];
        let summary = match (&p12.leaf, &p12.error) {
            (Some(leaf), _) => {
                evidence.push(Evidence::new(
                    "certificate_subject",
                    Value::name(leaf.subject.clone()),
                ));
                evidence.push(Evidence::new(
                    "certificate_issuer",
                    Value::name(leaf.issuer.clone()),
                ));
                evidence.push(Evidence::new("not_after", Value::Time(leaf.not_after)));
                evidence.push(Evidence::new("has_private_key", p12.has_key));
                evidence.push(Evidence::new("ca_certificates", p12.ca_count));
                let mut verdict = Vec::new();
                if leaf.not_after < now {
                    verdict.push(format!("expired {}", relative(leaf.not_after, now)));
                }
                if leaf.common_name.as_deref() != Some(user) {
                    verdict.push(format!(
                        "its CN \"{}\" differs from the user \"{user}\" (cert and clientcert=verify-full would refuse it)",
                        leaf.common_name.clone().unwrap_or_default()
                    ));
                }
                if let Some(names) = tls.and_then(ca_names) {
                    if !names.is_empty() && !issued_by_named_ca(leaf, &names) {
                        verdict.push(format!(
                            "its issuer is not among the CAs the server accepts ({})",
                            names.join("; ")
                        ));
                    }
                }
                if verdict.is_empty() {
                    "converted to PEM, the bundle's certificate and key would pass the local checks"
                        .to_string()
                } else {
                    format!(
                        "converted to PEM, the bundle's certificate would still fail: {}",
                        verdict.join("; ")
                    )
                }
            }
            (None, Some(error)) => format!("the bundle could not be opened: {error}"),
            (None, None) => "the bundle holds no certificate".into(),
        };
        let path = p12.path.display();
        out.push(Finding {
            code: Code::ClientCertPkcs12,
            severity: Severity::Info,
            summary,
            evidence,
            fix: Some(format!(
                "convert it for libpq: `openssl pkcs12 -in {path} -clcerts -nokeys -out postgresql.crt` and `openssl pkcs12 -in {path} -nocerts -nodes -out postgresql.key && chmod 0600 postgresql.key` (add -legacy for RC2-encrypted bundles)"
            )),
            modes: vec![],
        });
    }
    let Some(leaf) = &view.leaf else {
        return out;
    };
    if !view.loaded {
        return out;
    }
    if leaf.not_after < now {
        out.push(warn(
            Code::ClientCertExpired,
            format!("the client certificate \"{}\" expired on {}", leaf.subject, instant(leaf.not_after, now)),
            vec![Evidence::new("not_after", Value::Time(leaf.not_after))],
            "issue a new client certificate; a server that checks client certificates (ssl_ca_file set) refuses this one",
        ));
    } else if leaf.not_after - now <= warn_days * 86_400 {
        out.push(warn(
            Code::ClientCertExpiringSoon,
            format!(
                "the client certificate \"{}\" expires on {}",
                leaf.subject,
                instant(leaf.not_after, now)
            ),
            vec![
                Evidence::new("not_after", Value::Time(leaf.not_after)),
                Evidence::new("warn_days", warn_days),
            ],
            "issue its successor before it expires and replace sslcert/sslkey",
        ));
    }
    if leaf.not_before > now {
        out.push(warn(
            Code::ClientCertNotYetValid,
            format!(
                "the client certificate \"{}\" is not valid until {}",
                leaf.subject,
                instant(leaf.not_before, now)
            ),
            vec![Evidence::new("not_before", Value::Time(leaf.not_before))],
            "check the clocks of this machine and of the CA that issued it",
        ));
    }
    let eku_bad = leaf.extended_key_usage.as_ref().is_some_and(|e| {
        !e.iter()
            .any(|u| u == "clientAuth" || u == "anyExtendedKeyUsage")
    });
    let ku_bad = leaf
        .key_usage
        .as_ref()
        .is_some_and(|k| !k.iter().any(|u| u == "digitalSignature"));
    if eku_bad || ku_bad {
        out.push(warn(
            Code::ClientCertWrongPurpose,
            format!(
                "the client certificate \"{}\" is not valid for TLS client authentication: {}",
                leaf.subject,
                if eku_bad { "its extendedKeyUsage lacks clientAuth" } else { "its keyUsage lacks digitalSignature" }
            ),
            vec![
                Evidence::new("extended_key_usage", leaf.extended_key_usage.clone().map(|e| e.join(", ")).unwrap_or_else(|| "(none)".into())),
                Evidence::new("key_usage", leaf.key_usage.clone().map(|e| e.join(", ")).unwrap_or_else(|| "(none)".into())),
            ],
            "reissue with extendedKeyUsage=clientAuth (or no extendedKeyUsage at all) and keyUsage=digitalSignature",
        ));
    }
    if let Some(tls) = tls {
        if tls.handshake.as_ref().is_some_and(|h| h.is_ok()) {
            match ca_names(tls) {
                None => out.push(warn(
                    Code::ServerNoClientCa,
                    "the server did not ask for a client certificate, so yours was not sent: the server has no ssl_ca_file and ignores client certificates".into(),
                    vec![Evidence::new("sslcert", leaf.subject.clone())],
                    "on the server, set ssl_ca_file to the CA that issues client certificates, then reload; until then only passwords or trust authenticate",
                )),
                Some(names) if !names.is_empty() && !issued_by_named_ca(leaf, &names) => out.push(warn(
                    Code::ClientCertUnknownCa,
                    format!("the client certificate's issuer \"{}\" is not among the CAs the server asks for", leaf.issuer),
                    vec![Evidence::new("server_accepts_issuers", names.join("; ")), Evidence::new("certificate_issuer", Value::name(leaf.issuer.clone()))],
                    "use a client certificate signed by a CA in the server's ssl_ca_file (or send the intermediate in the sslcert file)",
                )),
                _ => {}
            }
        }
    }
    if !session_ok && leaf.common_name.as_deref() != Some(user) {
        out.push(warn(
            Code::ClientCertCnMismatch,
            format!(
                "the client certificate's CN \"{}\" differs from the user \"{user}\": a cert line or clientcert=verify-full refuses it unless pg_ident.conf maps it",
                leaf.common_name.clone().unwrap_or_default()
            ),
            vec![Evidence::new("certificate_cn", Value::name(leaf.common_name.clone().unwrap_or_default())), Evidence::new("user", Value::name(user.to_string()))],
            "connect as the user named in the CN, issue a certificate with CN=<user>, or add a map= line in pg_hba.conf with a pg_ident.conf entry",
        ));
    }
    out
}

/// The peer demanded a client certificate in the TLS handshake and none was sent: alert
/// certificate_required (TLS 1.3), or handshake_failure after a CertificateRequest (TLS
/// 1.2). PostgreSQL itself never does this (it asks, and leaves the refusal to
/// pg_hba.conf); a pooler or proxy in front of it does.
pub fn demanded_problem(alert: Alert, tls: &TlsAttempt, client: &ClientView) -> Problem {
    let why = match &client.none {
        Some(NoCertificate::CertModeDisabled) => "sslcertmode=disable keeps libpq from sending one",
        Some(NoCertificate::ExplicitMissing(_)) => "the sslcert file does not exist",
        Some(NoCertificate::NoPath) => "no sslcert is configured and there is no home directory",
        Some(NoCertificate::DefaultMissing(_)) => {
            "no sslcert is configured and ~/.postgresql/postgresql.crt does not exist"
        }
        _ if client.loaded => {
            "the configured certificate's key cannot sign with any scheme the peer accepts"
        }
        _ => "no client certificate is configured",
    };
    let mut problem = Problem::new(
        Code::ClientCertMissing,
        format!("the peer demanded a client certificate in the TLS handshake (alert {alert}) and none was sent: {why}"),
    )
    .with("alert", Value::name(alert.name()))
    .with(
        "usual_setting",
        "PostgreSQL never demands one at the TLS layer; a pooler does: PgBouncer with client_tls_sslmode = verify-ca or verify-full, pgpool-II with ssl_ca_cert set",
    );
    if let Some(names) = ca_names(tls).filter(|n| !n.is_empty()) {
        problem = problem.with("accepted_issuers", names.join("; "));
    }
    problem.fix("give sslcert and sslkey: a certificate issued by a CA the pooler trusts (client_tls_ca_file), with the user name as its CN")
}
