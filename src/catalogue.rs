//! The catalogue: every finding code the doctor emits, defined once, with its phase, its
//! default severity and its one-line meaning. The long explanation of each is in
//! `explain.rs`; docs/findings.md and the schema's code list are generated from both
//! (`PGTLS_BLESS=1 cargo test --lib`), and a test fails when either is stale.

use serde::Serialize;

/// How much a finding matters: see docs/findings.md.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
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

/// Where in the connection a finding arises, in the order libpq meets them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Name resolution, TCP or the Unix socket.
    Network,
    /// The SSLRequest (or direct TLS) and what follows it before TLS.
    Negotiation,
    /// The TLS handshake itself.
    Tls,
    /// The server's certificate chain and names, against the client's roots and CRLs.
    Chain,
    /// The client certificate and key, as libpq loads them and the server judges them.
    ClientCertificate,
    /// Startup and authentication: pg_hba.conf, roles, passwords, SCRAM.
    Authentication,
    /// Files and settings read without a connection (pg_hba.conf lint, conninfo settings).
    Configuration,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Network,
        Phase::Negotiation,
        Phase::Tls,
        Phase::Chain,
        Phase::ClientCertificate,
        Phase::Authentication,
        Phase::Configuration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Network => "network",
            Phase::Negotiation => "negotiation",
            Phase::Tls => "TLS",
            Phase::Chain => "chain",
            Phase::ClientCertificate => "client certificate",
            Phase::Authentication => "authentication",
            Phase::Configuration => "configuration",
        }
    }
}

macro_rules! catalogue {
    ($( $variant:ident = $code:literal, $phase:ident, $severity:ident, $meaning:literal; )*) => {
        /// A finding code. Its JSON and text form is the snake_case name; it never changes
        /// once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
        pub enum Code {
            $(
                #[doc = $meaning]
                #[serde(rename = $code)]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in the catalogue's order (by phase, roughly as libpq meets them).
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            pub fn phase(self) -> Phase {
                match self { $(Code::$variant => Phase::$phase),* }
            }

            /// The severity when the finding stands alone. A finding that breaks sslmodes
            /// takes its severity from them instead (error for the requested mode, warning
            /// for a stricter one, info for a weaker one).
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity),* }
            }

            /// The one-line meaning shown in docs/findings.md.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning),* }
            }
        }
    };
}

catalogue! {
    TcpConnectFailed = "tcp_connect_failed", Network, Error,
        "No TCP connection: refused, unreachable, or the host name does not resolve.";
    SocketConnectFailed = "socket_connect_failed", Network, Error,
        "No connection on the Unix-domain socket: no server listens there, or no permission.";
    ConnectTimeout = "connect_timeout", Network, Error,
        "A network step did not finish within connect_timeout or --timeout.";
    NotPostgres = "not_postgres", Network, Error,
        "The peer is not a PostgreSQL server (SSH, HTTP, TLS-only port, or nonsense).";
    SslResponseInjected = "ssl_response_injected", Negotiation, Error,
        "Bytes followed the server's 'S' before the TLS handshake (CVE-2021-23222 pattern).";
    ServerSslError = "server_ssl_error", Negotiation, Error,
        "The server answered the SSLRequest with an error before TLS.";
    ServerSslUnsupported = "server_ssl_unsupported", Negotiation, Error,
        "The server answered 'N': ssl = off, or no TLS in that build.";
    TlsHandshakeFailed = "tls_handshake_failed", Tls, Error,
        "The TLS handshake failed (alert, reset or EOF).";
    TlsVersionUnsupported = "tls_version_unsupported", Tls, Error,
        "No TLS protocol version or cipher suite in common.";
    RootCertMissing = "root_cert_missing", Chain, Error,
        "verify-ca/verify-full need a root certificate file, and there is none.";
    RootCertUnreadable = "root_cert_unreadable", Chain, Error,
        "The root certificate file exists but cannot be loaded: libpq fails to set up TLS.";
    ServerCertExpired = "server_cert_expired", Chain, Error,
        "A certificate in the server's chain (or the trust anchor) has expired.";
    ServerCertNotYetValid = "server_cert_not_yet_valid", Chain, Error,
        "A certificate in the server's chain is not valid yet.";
    ServerCertUnknownCa = "server_cert_unknown_ca", Chain, Error,
        "The server's chain does not lead to a certificate in the root file.";
    ServerCertRevoked = "server_cert_revoked", Chain, Error,
        "A certificate in the server's chain is revoked by the loaded CRL.";
    CrlIncomplete = "crl_incomplete", Chain, Error,
        "A CRL is loaded, so OpenSSL needs one for every CA in the chain, and one is missing or stale.";
    ServerCertHostnameMismatch = "server_cert_hostname_mismatch", Chain, Error,
        "The server certificate does not name the host that was connected to.";
    ServerCertWeakKey = "server_cert_weak_key", Chain, Error,
        "A key or signature in the chain is below OpenSSL security level 2.";
    ServerCertWrongPurpose = "server_cert_wrong_purpose", Chain, Error,
        "The server certificate's extended key usage does not allow serverAuth.";
    ServerCertInvalid = "server_cert_invalid", Chain, Error,
        "OpenSSL refused the server chain for another reason (named in the evidence).";
    CrlIgnored = "crl_ignored", Chain, Warning,
        "The CRL file does not load, and libpq silently ignores it: revocation is not checked.";
    ServerCertExpiringSoon = "server_cert_expiring_soon", Chain, Warning,
        "A certificate in the server's chain expires within --warn-days.";
    ServerCertRustlsDiffers = "server_cert_rustls_differs", Chain, Warning,
        "libpq accepts this chain, but rustls/webpki-based clients would refuse it.";
    HbaNoEntry = "hba_no_entry", Authentication, Error,
        "No pg_hba.conf line matches this connection.";
    HbaReject = "hba_reject", Authentication, Error,
        "A pg_hba.conf reject line matches this connection.";
    RoleMissing = "role_missing", Authentication, Error,
        "The role does not exist.";
    DatabaseMissing = "database_missing", Authentication, Error,
        "The database does not exist.";
    PasswordRequired = "password_required", Authentication, Error,
        "The server asks for a password and none was given (psql -w fails).";
    PasswordFailed = "password_failed", Authentication, Error,
        "The server refused the password (or hides a missing role behind the same error).";
    CredentialsWithheld = "credentials_withheld", Authentication, Error,
        "The doctor did not send the password on a connection libpq at the requested sslmode would not use.";
    TooManyConnections = "too_many_connections", Authentication, Error,
        "The server or role has no free connection slots.";
    ServerNotReady = "server_not_ready", Authentication, Error,
        "The server is starting up, shutting down or in recovery (57P03).";
    ServerRefused = "server_refused", Authentication, Error,
        "The server refused the session for another reason (its message is the evidence).";
    ConnectionLost = "connection_lost", Authentication, Error,
        "The server closed or reset the connection during startup.";
    ProtocolViolation = "protocol_violation", Authentication, Error,
        "The server sent something that is not valid protocol.";
    ScramServerProofInvalid = "scram_server_proof_invalid", Authentication, Error,
        "The server did not prove it knows the password (bad SCRAM server signature).";
    AuthMethodUnsupported = "auth_method_unsupported", Authentication, Error,
        "The server asks for an authentication method the doctor cannot complete.";
    ClientCertMissing = "client_cert_missing", ClientCertificate, Error,
        "No client certificate was sent: the server requires one (error), or sslcert names a missing file (info).";
    ClientCertExpired = "client_cert_expired", ClientCertificate, Error,
        "The client certificate has expired (the server refuses it with alert certificate_expired).";
    ClientCertNotYetValid = "client_cert_not_yet_valid", ClientCertificate, Error,
        "The client certificate is not valid yet (the server refuses it with alert bad_certificate).";
    ClientCertUnknownCa = "client_cert_unknown_ca", ClientCertificate, Error,
        "The server does not trust the client certificate's issuer (not in its ssl_ca_file).";
    ClientCertRevoked = "client_cert_revoked", ClientCertificate, Error,
        "The server's ssl_crl_file revokes the client certificate.";
    ClientCertWrongPurpose = "client_cert_wrong_purpose", ClientCertificate, Error,
        "The client certificate's extendedKeyUsage lacks clientAuth, or its keyUsage lacks digitalSignature.";
    ClientCertExpiringSoon = "client_cert_expiring_soon", ClientCertificate, Warning,
        "The client certificate expires within --warn-days.";
    ClientCertPkcs12 = "client_cert_pkcs12", ClientCertificate, Info,
        "sslcert is a PKCS#12 bundle: what its certificate and key would get if converted to PEM.";
    ClientKeyMismatch = "client_key_mismatch", ClientCertificate, Error,
        "The client key does not belong to the client certificate (key values mismatch).";
    ClientKeyUnsupported = "client_key_unsupported", ClientCertificate, Error,
        "libpq can use the client key, the doctor's TLS library cannot (P-521 with ring): TLS verdicts are left undetermined.";
    ClientKeyWeak = "client_key_weak", ClientCertificate, Error,
        "The client key is below OpenSSL security level 2 (ee key too small).";
    ServerNoClientCa = "server_no_client_ca", ClientCertificate, Error,
        "The server sent no CertificateRequest: it has no ssl_ca_file and ignores client certificates.";
    ChannelBindingFailed = "channel_binding_failed", Authentication, Error,
        "channel_binding=require could not be met (no TLS, or no SCRAM-SHA-256-PLUS).";
    ClientCertUnreadable = "client_cert_unreadable", ClientCertificate, Error,
        "The client certificate file cannot be read: libpq fails to set up TLS.";
    ClientCertCnMismatch = "client_cert_cn_mismatch", ClientCertificate, Error,
        "The client certificate's CN/DN does not match the user (cert or clientcert=verify-full).";
    ClientCertRejected = "client_cert_rejected", ClientCertificate, Error,
        "The server refused the client certificate during or right after the handshake.";
    ClientKeyMissing = "client_key_missing", ClientCertificate, Error,
        "A client certificate is present but its private key file is not.";
    ClientKeyUnreadable = "client_key_unreadable", ClientCertificate, Error,
        "The client key cannot be loaded.";
    ClientKeyPermissions = "client_key_permissions", ClientCertificate, Error,
        "The client key file has permissions libpq refuses.";
    ClientKeyEncrypted = "client_key_encrypted", ClientCertificate, Error,
        "The client key is encrypted and no (or the wrong) sslpassword was given.";
    ServerCaMissing = "server_ca_missing", ClientCertificate, Error,
        "The server needs client certificates but has no ssl_ca_file.";
    HbaRule = "hba_rule", Authentication, Info,
        "The pg_hba.conf line that decides the connection (from --hba, --admin or the server log).";
    HbaParseError = "hba_parse_error", Configuration, Error,
        "A pg_hba.conf/pg_ident.conf line the server refuses to load; one such line stops the whole file from loading.";
    HbaShadowedRule = "hba_shadowed_rule", Configuration, Warning,
        "A pg_hba.conf rule that can never match (an earlier rule takes all its connections, or hostssl with ssl = off).";
    HbaInsecureTrust = "hba_insecure_trust", Configuration, Warning,
        "trust on a network line without clientcert.";
    HbaWeakPasswordMethod = "hba_weak_password_method", Configuration, Warning,
        "md5 or password where scram-sha-256 is possible.";
    HbaObsoleteClientcert = "hba_obsolete_clientcert", Configuration, Error,
        "clientcert=1/0/no-verify: accepted up to PostgreSQL 13, refused from 14.";
    HbaCertNeedsCa = "hba_cert_needs_ca", Configuration, Warning,
        "A rule checks client certificates but postgresql.conf has no ssl_ca_file.";
    HbaPlaintextAllowed = "hba_plaintext_allowed", Configuration, Warning,
        "The file uses hostssl, yet a host line still accepts plaintext with no hostnossl reject in front of it.";
    HbaRulesStale = "hba_rules_stale", Configuration, Warning,
        "pg_hba.conf on disk differs from the rules in force (changed after the last reload, or has error rows).";
    IdentNoMatch = "ident_no_match", Authentication, Error,
        "A pg_ident.conf map cannot map this name (no line matches, a missing map, or a \\1 without a capture group).";
    ServerLogReason = "server_log_reason", Authentication, Info,
        "What the server's log (--server-log) says about this probe's connections.";
    DirectTlsUnsupported = "direct_tls_unsupported", Negotiation, Error,
        "sslnegotiation=direct, but the server (16 or older, or a proxy) does not speak direct TLS.";
    DirectTlsWeakSslmode = "direct_tls_weak_sslmode", Negotiation, Error,
        "libpq refuses sslnegotiation=direct with disable, allow or prefer.";
    AdminConnectionFailed = "admin_connection_failed", Configuration, Warning,
        "The --admin connection could not read pg_hba_file_rules.";
    PlaintextFallback = "plaintext_fallback", Negotiation, Warning,
        "The connection works only because libpq fell back to plaintext.";
    UnixSocket = "unix_socket", Network, Info,
        "The target is a Unix socket: libpq never uses TLS there.";
    ServerFlood = "server_flood", Authentication, Warning,
        "The server sent a flood of messages (rows, notices, parameter reports or errors) beyond what any server sends; the doctor kept what fits and named it.";
    NotProbed = "not_probed", Configuration, Error,
        "The doctor made no connection of the kind this sslmode needs, so its cell is undetermined.";
    PassfileUnread = "passfile_unread", Authentication, Error,
        "The passfile could not be read by the doctor (too large, or it would block) though libpq might read it: cells that need a password are undetermined.";
    TlsNotEmulated = "tls_not_emulated", Tls, Error,
        "libpq (OpenSSL) completes a handshake the doctor's TLS library cannot (TLS 1.2 with an RSA-PSS server key): TLS verdicts are left undetermined.";
    SettingNotEmulated = "setting_not_emulated", Configuration, Warning,
        "A connection setting the doctor does not emulate changes what libpq would do: its verdicts may differ.";
    SystemRootWeakSslmode = "system_root_weak_sslmode", Chain, Error,
        "libpq 16+ refuses sslrootcert=system with any sslmode but verify-full.";
    Authenticated = "authenticated", Authentication, Info,
        "The requested connection logged in: which authentication the server ran (SCRAM with or without channel binding, a certificate, trust).";
    TlsSession = "tls_session", Tls, Info,
        "The TLS session that was established, and what the server saw of it.";
    PoolerDetected = "pooler_detected", Negotiation, Info,
        "The peer is a connection pooler (PgBouncer, pgpool-II) or another intermediary, not PostgreSQL itself.";
    PoolerCertAuthFailed = "pooler_cert_auth_failed", Authentication, Error,
        "The pooler refused the client certificate for the user (PgBouncer auth_type = cert, pgpool-II cert authentication).";
    PoolerServerLoginFailed = "pooler_server_login_failed", Authentication, Error,
        "The pooler could not log in to the server behind it (the second hop): it says so in its own words, or relays the server's refusal.";
    PoolerConfigWeakServerTls = "pooler_config_weak_server_tls", Configuration, Warning,
        "The pooler's TLS to the server is weaker than the TLS its clients must use (PgBouncer server_tls_sslmode against client_tls_sslmode).";
    PoolerConfigCertWithoutCa = "pooler_config_cert_without_ca", Configuration, Error,
        "Certificate authentication at the pooler without a CA to check certificates with, or without asking clients for one.";
    PoolerServerHop = "pooler_server_hop", Tls, Error,
        "The pooler's own connection to the server, checked with the pooler's TLS settings (--pooler-config): whether it verifies, and what fails.";
    PoolerCertMatchDiffers = "pooler_cert_match_differs", ClientCertificate, Warning,
        "The pooler accepts the client certificate for the user where PostgreSQL's cert method would refuse it, or the other way round.";
}

impl Code {
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in Code::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(Code::parse(code.as_str()), Some(*code));
        }
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
    }

    /// Every code is produced by some server-less table: the judgement's (synthetic
    /// observations), the client's files, the lint, the run's rules and the settings.
    #[test]
    fn every_code_is_produced_by_a_table() {
        let mut produced = crate::eval::tests::codes_produced();
        produced.extend(crate::local::tests::codes_produced());
        produced.extend(crate::hba::lint::tests::codes_produced());
        produced.extend(crate::app::tests::codes_produced());
        produced.extend(crate::keywords::tests::codes_produced());
        produced.extend(crate::pooler::lint::tests::codes_produced());
        let missing: Vec<Code> = Code::ALL
            .iter()
            .copied()
            .filter(|c| !produced.contains(c))
            .collect();
        assert!(missing.is_empty(), "no table produces {missing:?}");
    }
}
