//! Causes in the server's chain and names, as OpenSSL and libpq judge them.

use crate::catalogue::Code;
use crate::eval::prose::*;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::plan::Endpoint;
use crate::trust::{ChainFailure, ChainFailureKind, RootSource};
use crate::x509::{self, CertSummary};

pub(in crate::eval) fn hostname_problem(
    endpoint: &Endpoint,
    chain: &[CertSummary],
) -> Option<Problem> {
    let leaf = chain.first()?;
    if endpoint.host.is_empty() {
        return Some(
            Problem::new(
                Code::ServerCertHostnameMismatch,
                "host name must be specified for a verified SSL connection",
            )
            .fix("verify-full checks the certificate against host=, never hostaddr=: add host=<name on the certificate> next to hostaddr"),
        );
    }
    if x509::host_matches(leaf, &endpoint.host) {
        return None;
    }
    let embedded_null = leaf
        .dns_names
        .iter()
        .chain(leaf.common_name.iter())
        .any(|n| n.contains('\0'));
    if embedded_null {
        return Some(
            Problem::new(
                Code::ServerCertHostnameMismatch,
                "SSL certificate's name contains embedded null",
            )
            .with("host", Value::name(endpoint.host.clone()))
            .with(
                "certificate_names",
                x509::presented_names(leaf).iter().map(|n| n.replace('\0', "\\0")).collect::<Vec<_>>().join(", "),
            )
            .fix("a name with a NUL byte is a classic spoofing trick (\"good.example\\0.evil.example\"); do not trust this certificate, and reissue it"),
        );
    }
    let names = x509::presented_names(leaf);
    let examined = x509::examined_names(leaf, &endpoint.host);
    let first = examined.first().cloned().unwrap_or_default();
    let message = match examined.len() {
        0 => "could not get server's host name from server certificate".to_string(),
        1 => format!(
            "server certificate for \"{first}\" does not match host name \"{}\"",
            endpoint.host
        ),
        n => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \"{}\"",
            n - 1,
            if n == 2 { "" } else { "s" },
            endpoint.host
        ),
    };
    let mut problem = Problem::new(Code::ServerCertHostnameMismatch, message)
        .with("host", Value::name(endpoint.host.clone()))
        .with("certificate_names", names.join(", "))
        .with("certificate_subject", Value::name(leaf.subject.clone()));
    if !leaf.dns_names.is_empty() {
        if let Some(cn) = &leaf.common_name {
            if x509::host_matches(
                &CertSummary {
                    dns_names: vec![],
                    ip_addresses: vec![],
                    ..leaf.clone()
                },
                &endpoint.host,
            ) {
                problem = problem.with(
                    "note",
                    format!("the CN \"{cn}\" matches, but libpq ignores the CN when the certificate has a DNS SAN"),
                );
            }
        }
    }
    let san = if endpoint.host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{}", endpoint.host)
    } else {
        format!("DNS:{}", endpoint.host)
    };
    let fix = match names.first() {
        Some(name) => format!(
            "connect with host={name} (one of the names the certificate holds; keep hostaddr= for the address), or reissue the server certificate with subjectAltName={san}"
        ),
        None => format!("reissue the server certificate with subjectAltName=DNS:{}", endpoint.host),
    };
    Some(problem.fix(fix))
}

pub(in crate::eval) fn chain_problem(
    failure: &ChainFailure,
    chain: &[CertSummary],
    roots: &[Vec<u8>],
    source: &RootSource,
    now: i64,
) -> Problem {
    let subject_at = failure
        .cert
        .as_ref()
        .and_then(|d| x509::summarize(d).ok())
        .or_else(|| chain.get(failure.depth as usize).cloned());
    let root_file = match source {
        RootSource::File(p) => p.display().to_string(),
        RootSource::System => "the system's trusted roots".into(),
    };
    let which = which_certificate(failure.depth as usize, chain.len());
    let mut problem = match failure.kind {
        ChainFailureKind::Expired => {
            let c = subject_at.clone();
            let until = c.as_ref().map(|c| c.not_after).unwrap_or(now);
            Problem::new(
                Code::ServerCertExpired,
                format!(
                    "{which} expired on {}",
                    instant(until, now)
                ),
            )
            .with("not_after", Value::Time(until))
            .fix(if failure.depth == 0 {
                "renew the server certificate (ssl_cert_file), then `SELECT pg_reload_conf();`".to_string()
            } else {
                format!("replace the expired CA certificate (in the server's chain or in {root_file}) with its renewed version")
            })
        }
        ChainFailureKind::NotYetValid => {
            let from = subject_at.as_ref().map(|c| c.not_before).unwrap_or(now);
            Problem::new(
                Code::ServerCertNotYetValid,
                format!("{which} is not valid until {}", instant(from, now)),
            )
            .with("not_before", Value::Time(from))
            .fix("check the clocks of the client and of the machine that issued the certificate")
        }
        ChainFailureKind::UnknownCa => unknown_ca_problem(chain, roots, &root_file, failure),
        ChainFailureKind::Revoked => Problem::new(
            Code::ServerCertRevoked,
            format!("{which} is revoked by the loaded CRL"),
        )
        .fix("install a new, unrevoked server certificate; or, if the revocation is stale, update the CRL (sslcrl, sslcrldir or ~/.postgresql/root.crl)"),
        ChainFailureKind::CrlIncomplete => Problem::new(
            Code::CrlIncomplete,
            format!(
                "a CRL is loaded, so OpenSSL checks every certificate in the chain, and for {which} it found {}",
                failure.openssl_text
            ),
        )
        .fix("put a current CRL from every CA in the chain (root and intermediates) in the sslcrl file or the sslcrldir directory (named by `openssl rehash`), or remove sslcrl, sslcrldir and root.crl"),
        ChainFailureKind::WeakKey => Problem::new(
            Code::ServerCertWeakKey,
            format!(
                "{which} is too weak for OpenSSL security level 2 ({})",
                failure.openssl_text
            ),
        )
        .fix("reissue with an RSA key of at least 2048 bits (or EC P-256) and a SHA-256 signature: `openssl req -new -newkey rsa:3072 -sha256 ...`"),
        ChainFailureKind::WrongPurpose => Problem::new(
            Code::ServerCertWrongPurpose,
            format!("{which} may not be used by a TLS server ({})", failure.openssl_text),
        )
        .fix("reissue with extendedKeyUsage=serverAuth (or without an extendedKeyUsage extension)"),
        ChainFailureKind::Other => Problem::new(
            Code::ServerCertInvalid,
            format!("OpenSSL refused {which}: {}", failure.openssl_text),
        ),
    };
    if let Some(c) = &subject_at {
        problem = problem
            .with("certificate_subject", Value::name(c.subject.clone()))
            .with("certificate_issuer", Value::name(c.issuer.clone()));
    }
    problem
        .with("depth", failure.depth)
        .with(
            "openssl_error",
            format!("{} ({})", failure.openssl_text, failure.openssl_code),
        )
        .with("root_file", root_file)
        .with("libpq_says", "SSL error: certificate verify failed")
}

pub(in crate::eval) fn unknown_ca_problem(
    chain: &[CertSummary],
    roots: &[Vec<u8>],
    root_file: &str,
    failure: &ChainFailure,
) -> Problem {
    let root_summaries: Vec<CertSummary> = roots
        .iter()
        .filter_map(|d| x509::summarize(d).ok())
        .collect();
    let last = chain.last();
    let presented = chain
        .iter()
        .enumerate()
        .map(|(i, c)| format!("[{i}] {} (issuer {})", c.subject, c.issuer))
        .collect::<Vec<_>>()
        .join("; ");
    // A root file holding only an intermediate of this chain: OpenSSL wants the self-signed root.
    let partial = root_summaries.iter().find(|r| {
        !r.self_issued
            && chain
                .iter()
                .any(|c| c.issuer == r.subject || c.subject == r.subject)
    });
    let (summary, fix) = if let Some(inter) = partial {
        (
            format!(
                "the root file holds \"{}\", an intermediate CA, but not the self-signed root \"{}\" above it; libpq (OpenSSL) does not accept partial chains",
                inter.subject, inter.issuer
            ),
            format!("add the root CA certificate \"{}\" to {root_file}", inter.issuer),
        )
    } else {
        match last {
            Some(c) if c.self_issued => (
                format!(
                    "the server's chain ends at the self-signed certificate \"{}\", which is not in {root_file}",
                    c.subject
                ),
                format!(
                    "if \"{}\" is your CA, append it to {root_file}: `openssl s_client -starttls postgres -connect HOST:PORT -showcerts </dev/null` prints it",
                    c.subject
                ),
            ),
            Some(c) => (
                format!(
                    "the server's chain ends at \"{}\", whose issuer \"{}\" the server did not send and {root_file} does not hold",
                    c.subject, c.issuer
                ),
                format!(
                    "append the CA certificate \"{}\" to {root_file}; if it is an intermediate, also set the server's ssl_cert_file to the server certificate followed by its intermediates",
                    c.issuer
                ),
            ),
            None => ("the server sent no certificate".into(), "check ssl_cert_file".into()),
        }
    };
    let mut p = Problem::new(Code::ServerCertUnknownCa, summary)
        .with("presented_chain", presented)
        .with(
            "root_file_holds",
            root_summaries
                .iter()
                .map(|r| r.subject.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
        .fix(fix);
    if let Some(l) = last {
        p = p.with("missing_issuer", Value::name(l.issuer.clone()));
    }
    p.with("openssl_reason", failure.openssl_text.clone())
}
