//! Findings and the catalogue of their stable codes. docs/findings.md documents the same
//! list; a test keeps the two in step.

use crate::sslmode::SslMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One diagnosed fact: a stable code, what was seen, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub summary: String,
    /// Ordered key/value evidence: names, dates, bytes, the server's own words.
    pub evidence: Vec<(String, String)>,
    pub fix: Option<String>,
    /// The sslmodes this problem makes fail.
    pub modes: Vec<SslMode>,
}

/// Every code the doctor emits, with a one-line meaning (the catalogue).
pub const CATALOGUE: &[(&str, &str)] = &[
    ("tcp_connect_failed", "No TCP connection: refused, unreachable, or the host name does not resolve."),
    ("connect_timeout", "A network step did not finish within connect_timeout or --timeout."),
    ("not_postgres", "The peer is not a PostgreSQL server (SSH, HTTP, TLS-only port, or nonsense)."),
    ("ssl_response_injected", "Bytes followed the server's 'S' before the TLS handshake (CVE-2021-23222 pattern)."),
    ("server_ssl_error", "The server answered the SSLRequest with an error before TLS."),
    ("server_ssl_unsupported", "The server answered 'N': ssl = off, or no TLS in that build."),
    ("tls_handshake_failed", "The TLS handshake failed (alert, reset or EOF)."),
    ("tls_version_unsupported", "No TLS protocol version or cipher suite in common."),
    ("root_cert_missing", "verify-ca/verify-full need a root certificate file, and there is none."),
    ("root_cert_unreadable", "The root certificate file exists but cannot be loaded: libpq fails to set up TLS."),
    ("server_cert_expired", "A certificate in the server's chain (or the trust anchor) has expired."),
    ("server_cert_not_yet_valid", "A certificate in the server's chain is not valid yet."),
    ("server_cert_unknown_ca", "The server's chain does not lead to a certificate in the root file."),
    ("server_cert_revoked", "A certificate in the server's chain is revoked by the loaded CRL."),
    ("crl_incomplete", "A CRL is loaded, so OpenSSL needs one for every CA in the chain, and one is missing or stale."),
    ("server_cert_hostname_mismatch", "The server certificate does not name the host that was connected to."),
    ("server_cert_weak_key", "A key or signature in the chain is below OpenSSL security level 2."),
    ("server_cert_wrong_purpose", "The server certificate's extended key usage does not allow serverAuth."),
    ("server_cert_invalid", "OpenSSL refused the server chain for another reason (named in the evidence)."),
    ("crl_ignored", "The CRL file does not load, and libpq silently ignores it: revocation is not checked."),
    ("server_cert_expiring_soon", "A certificate in the server's chain expires within --warn-days."),
    ("server_cert_rustls_differs", "libpq accepts this chain, but rustls/webpki-based clients would refuse it."),
    ("hba_no_entry", "No pg_hba.conf line matches this connection."),
    ("hba_reject", "A pg_hba.conf reject line matches this connection."),
    ("role_missing", "The role does not exist."),
    ("database_missing", "The database does not exist."),
    ("password_required", "The server asks for a password and none was given (psql -w fails)."),
    ("password_failed", "The server refused the password (or hides a missing role behind the same error)."),
    ("credentials_withheld", "The doctor did not send the password on a connection libpq at the requested sslmode would not use."),
    ("too_many_connections", "The server or role has no free connection slots."),
    ("server_not_ready", "The server is starting up, shutting down or in recovery (57P03)."),
    ("server_refused", "The server refused the session for another reason (its message is the evidence)."),
    ("connection_lost", "The server closed or reset the connection during startup."),
    ("protocol_violation", "The server sent something that is not valid protocol."),
    ("scram_server_proof_invalid", "The server did not prove it knows the password (bad SCRAM server signature)."),
    ("auth_method_unsupported", "The server asks for an authentication method the doctor cannot complete."),
    ("client_cert_missing", "No client certificate was sent: the server requires one (error), or sslcert names a missing file (info)."),
    ("client_cert_expired", "The client certificate has expired (the server refuses it with alert certificate_expired)."),
    ("client_cert_not_yet_valid", "The client certificate is not valid yet (the server refuses it with alert bad_certificate)."),
    ("client_cert_unknown_ca", "The server does not trust the client certificate's issuer (not in its ssl_ca_file)."),
    ("client_cert_revoked", "The server's ssl_crl_file revokes the client certificate."),
    ("client_cert_wrong_purpose", "The client certificate's extendedKeyUsage lacks clientAuth, or its keyUsage lacks digitalSignature."),
    ("client_cert_expiring_soon", "The client certificate expires within --warn-days."),
    ("client_cert_pkcs12", "sslcert is a PKCS#12 bundle: what its certificate and key would get if converted to PEM."),
    ("client_key_mismatch", "The client key does not belong to the client certificate (key values mismatch)."),
    ("client_key_unsupported", "libpq can use the client key, the doctor's TLS library cannot (P-521 with ring): TLS verdicts are left undetermined."),
    ("client_key_weak", "The client key is below OpenSSL security level 2 (ee key too small)."),
    ("server_no_client_ca", "The server sent no CertificateRequest: it has no ssl_ca_file and ignores client certificates."),
    ("channel_binding_failed", "channel_binding=require could not be met (no TLS, or no SCRAM-SHA-256-PLUS)."),
    ("client_cert_unreadable", "The client certificate file cannot be read: libpq fails to set up TLS."),
    ("client_cert_cn_mismatch", "The client certificate's CN/DN does not match the user (cert or clientcert=verify-full)."),
    ("client_cert_rejected", "The server refused the client certificate during or right after the handshake."),
    ("client_key_missing", "A client certificate is present but its private key file is not."),
    ("client_key_unreadable", "The client key cannot be loaded."),
    ("client_key_permissions", "The client key file has permissions libpq refuses."),
    ("client_key_encrypted", "The client key is encrypted and no (or the wrong) sslpassword was given."),
    ("server_ca_missing", "The server needs client certificates but has no ssl_ca_file."),
    ("hba_rule", "The pg_hba.conf line that decides the connection (from --hba, --admin or the server log)."),
    ("hba_parse_error", "A pg_hba.conf/pg_ident.conf line the server refuses to load; one such line stops the whole file from loading."),
    ("hba_shadowed_rule", "A pg_hba.conf rule that can never match (an earlier rule takes all its connections, or hostssl with ssl = off)."),
    ("hba_insecure_trust", "trust on a network line without clientcert."),
    ("hba_weak_password_method", "md5 or password where scram-sha-256 is possible."),
    ("hba_obsolete_clientcert", "clientcert=1/0/no-verify: accepted up to PostgreSQL 13, refused from 14."),
    ("hba_cert_needs_ca", "A rule checks client certificates but postgresql.conf has no ssl_ca_file."),
    ("hba_plaintext_allowed", "The file uses hostssl, yet a host line still accepts plaintext with no hostnossl reject in front of it."),
    ("hba_rules_stale", "pg_hba.conf on disk differs from the rules in force (changed after the last reload, or has error rows)."),
    ("ident_no_match", "A pg_ident.conf map cannot map this name (no line matches, a missing map, or a \\1 without a capture group)."),
    ("server_log_reason", "What the server's log (--server-log) says about this probe's connections."),
    ("direct_tls_unsupported", "sslnegotiation=direct, but the server (16 or older, or a proxy) does not speak direct TLS."),
    ("direct_tls_weak_sslmode", "libpq refuses sslnegotiation=direct with disable, allow or prefer."),
    ("admin_connection_failed", "The --admin connection could not read pg_hba_file_rules."),
    ("plaintext_fallback", "The connection works only because libpq fell back to plaintext."),
    ("unix_socket", "The target is a Unix socket: libpq never uses TLS there."),
    ("server_flood", "The server sent a flood of messages (rows, notices, parameter reports or errors) beyond what any server sends; the doctor kept what fits and named it."),
    ("not_probed", "The doctor made no connection of the kind this sslmode needs, so its cell is undetermined."),
    ("passfile_unread", "The passfile could not be read by the doctor (too large, or it would block) though libpq might read it: cells that need a password are undetermined."),
    ("tls_not_emulated", "libpq (OpenSSL) completes a handshake the doctor's TLS library cannot (TLS 1.2 with an RSA-PSS server key): TLS verdicts are left undetermined."),
    ("setting_not_emulated", "A connection setting the doctor does not emulate changes what libpq would do: its verdicts may differ."),
    ("system_root_weak_sslmode", "libpq 16+ refuses sslrootcert=system with any sslmode but verify-full."),
    ("tls_session", "The TLS session that was established, and what the server saw of it."),
];

pub fn describe(code: &str) -> Option<&'static str> {
    CATALOGUE.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// A failure detected while judging one sslmode, before it is merged into a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub summary: String,
    pub evidence: Vec<(String, String)>,
    pub fix: Option<String>,
}

impl Problem {
    pub fn new(code: &'static str, summary: impl Into<String>) -> Self {
        debug_assert!(
            describe(code).is_some(),
            "code {code} missing from CATALOGUE"
        );
        Problem {
            code,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.evidence.push((key.to_string(), value.into()));
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Severity from the modes a problem breaks: error if it breaks the requested mode, warning
/// if it breaks a stricter one (it works now but a stricter client would fail), else info.
pub fn severity_for(modes: &[SslMode], requested: SslMode) -> Severity {
    if modes.contains(&requested) {
        Severity::Error
    } else if modes.iter().any(|m| *m > requested) {
        Severity::Warning
    } else {
        Severity::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rules() {
        use SslMode::*;
        assert_eq!(
            severity_for(&[VerifyCa, VerifyFull], VerifyFull),
            Severity::Error
        );
        assert_eq!(
            severity_for(&[VerifyCa, VerifyFull], Prefer),
            Severity::Warning
        );
        assert_eq!(severity_for(&[Disable, Allow], Require), Severity::Info);
    }

    #[test]
    fn schema_enumerates_exactly_the_catalogue() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../docs/report.schema.json")).unwrap();
        let listed: Vec<&str> = schema["$defs"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let catalogue: Vec<&str> = CATALOGUE.iter().map(|(c, _)| *c).collect();
        assert_eq!(listed, catalogue, "run scripts/gen-docs.py");
    }

    #[test]
    fn catalogue_is_documented() {
        let doc = include_str!("../docs/findings.md");
        for (code, _) in CATALOGUE {
            assert!(
                doc.contains(&format!("`{code}`")),
                "{code} missing from docs/findings.md"
            );
        }
    }
}
