//! What the probe observed, as plain data: what was sent and received on each connection,
//! and the typed facts of each TLS handshake. The probe (all I/O) fills these in; `eval`
//! judges them without a socket, so a rule is testable from a synthetic observation.

use std::net::SocketAddr;

use crate::plan::Endpoint;
use crate::sslmode::SslMode;
use crate::wire::ErrorFields;

/// A TLS alert (RFC 8446 section 6, with the TLS 1.2 ones): what the server said when it
/// ended a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alert {
    CloseNotify,
    UnexpectedMessage,
    BadRecordMac,
    DecryptionFailed,
    RecordOverflow,
    DecompressionFailure,
    HandshakeFailure,
    NoCertificate,
    BadCertificate,
    UnsupportedCertificate,
    CertificateRevoked,
    CertificateExpired,
    CertificateUnknown,
    IllegalParameter,
    UnknownCa,
    AccessDenied,
    DecodeError,
    DecryptError,
    ExportRestriction,
    ProtocolVersion,
    InsufficientSecurity,
    InternalError,
    InappropriateFallback,
    UserCanceled,
    NoRenegotiation,
    MissingExtension,
    UnsupportedExtension,
    CertificateUnobtainable,
    UnrecognizedName,
    BadCertificateStatusResponse,
    BadCertificateHashValue,
    UnknownPskIdentity,
    CertificateRequired,
    NoApplicationProtocol,
    /// A code no RFC names.
    Other(u8),
}

const ALERTS: &[(u8, Alert, &str)] = &[
    (0, Alert::CloseNotify, "close_notify"),
    (10, Alert::UnexpectedMessage, "unexpected_message"),
    (20, Alert::BadRecordMac, "bad_record_mac"),
    (21, Alert::DecryptionFailed, "decryption_failed"),
    (22, Alert::RecordOverflow, "record_overflow"),
    (30, Alert::DecompressionFailure, "decompression_failure"),
    (40, Alert::HandshakeFailure, "handshake_failure"),
    (41, Alert::NoCertificate, "no_certificate"),
    (42, Alert::BadCertificate, "bad_certificate"),
    (43, Alert::UnsupportedCertificate, "unsupported_certificate"),
    (44, Alert::CertificateRevoked, "certificate_revoked"),
    (45, Alert::CertificateExpired, "certificate_expired"),
    (46, Alert::CertificateUnknown, "certificate_unknown"),
    (47, Alert::IllegalParameter, "illegal_parameter"),
    (48, Alert::UnknownCa, "unknown_ca"),
    (49, Alert::AccessDenied, "access_denied"),
    (50, Alert::DecodeError, "decode_error"),
    (51, Alert::DecryptError, "decrypt_error"),
    (60, Alert::ExportRestriction, "export_restriction"),
    (70, Alert::ProtocolVersion, "protocol_version"),
    (71, Alert::InsufficientSecurity, "insufficient_security"),
    (80, Alert::InternalError, "internal_error"),
    (86, Alert::InappropriateFallback, "inappropriate_fallback"),
    (90, Alert::UserCanceled, "user_canceled"),
    (100, Alert::NoRenegotiation, "no_renegotiation"),
    (109, Alert::MissingExtension, "missing_extension"),
    (110, Alert::UnsupportedExtension, "unsupported_extension"),
    (
        111,
        Alert::CertificateUnobtainable,
        "certificate_unobtainable",
    ),
    (112, Alert::UnrecognizedName, "unrecognized_name"),
    (
        113,
        Alert::BadCertificateStatusResponse,
        "bad_certificate_status_response",
    ),
    (
        114,
        Alert::BadCertificateHashValue,
        "bad_certificate_hash_value",
    ),
    (115, Alert::UnknownPskIdentity, "unknown_psk_identity"),
    (116, Alert::CertificateRequired, "certificate_required"),
    (120, Alert::NoApplicationProtocol, "no_application_protocol"),
];

impl Alert {
    pub fn from_code(code: u8) -> Alert {
        ALERTS
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|(_, alert, _)| *alert)
            .unwrap_or(Alert::Other(code))
    }

    pub fn code(self) -> u8 {
        match self {
            Alert::Other(code) => code,
            known => ALERTS
                .iter()
                .find(|(_, a, _)| *a == known)
                .map(|(c, _, _)| *c)
                .unwrap_or_default(),
        }
    }

    /// The RFC's name (`unknown_ca`), as OpenSSL and the server log spell it.
    pub fn name(self) -> String {
        match ALERTS.iter().find(|(_, a, _)| *a == self) {
            Some((_, _, name)) => (*name).to_string(),
            None => format!("unknown alert {}", self.code()),
        }
    }

    /// The alerts a TLS server sends when it refuses the client's certificate.
    pub fn refuses_certificate(self) -> bool {
        matches!(
            self,
            Alert::UnknownCa
                | Alert::BadCertificate
                | Alert::CertificateExpired
                | Alert::CertificateRevoked
                | Alert::UnsupportedCertificate
                | Alert::CertificateUnknown
                | Alert::DecryptError
        )
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// libpq's connect_timeout for one step.
    Step,
    /// The doctor's --timeout for the whole probe.
    Overall,
}

/// Why no TCP (or Unix-socket) connection was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Resolve {
        host: String,
        reason: String,
    },
    Refused {
        addrs: Vec<SocketAddr>,
        reason: String,
    },
    Timeout {
        kind: TimeoutKind,
        addrs: Vec<SocketAddr>,
    },
    /// The resolver did not answer within the deadline (a silent DNS server).
    ResolveTimeout {
        host: String,
        kind: TimeoutKind,
    },
    Socket {
        path: String,
        reason: String,
    },
}

/// The server's answer to the SSLRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslReply {
    Accepted,
    Refused,
    /// `E`: an error before TLS (fork failure, or a v3 ErrorResponse). Unauthenticated.
    ServerError {
        text: String,
    },
    /// `S` followed at once by bytes the server should not have sent (CVE-2021-23222).
    Injected {
        extra: Vec<u8>,
    },
    /// Not PostgreSQL at all: an SSH banner, an HTTP reply, a TLS alert.
    Foreign {
        bytes: Vec<u8>,
        peer: String,
    },
    Unexpected {
        byte: u8,
        following: Vec<u8>,
    },
    Closed,
    Reset(String),
    Timeout(TimeoutKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFacts {
    pub version: crate::plan::TlsVersion,
    pub cipher_suite: String,
    pub key_exchange_group: Option<String>,
    pub alpn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server sent a TLS alert.
    Alert(Alert),
    /// No protocol version or cipher suite in common.
    Incompatible(String),
    Eof,
    Reset(String),
    Timeout(TimeoutKind),
    /// ssl_max_protocol_version admits only TLS 1.0/1.1, which the doctor cannot offer
    /// (libpq sends such a ClientHello and the server answers alert protocol_version).
    OnlyOldVersions {
        min: String,
        max: String,
    },
    /// A handshake OpenSSL completes and rustls cannot (a TLS 1.2 key exchange signed with
    /// an RSA-PSS key): the verdict is undetermined, never guessed.
    Unemulated(String),
    /// The server answered the ClientHello with something that is not TLS (PgBouncer and
    /// pgpool-II answer a direct-TLS ClientHello with a plaintext ErrorResponse).
    PlaintextReply {
        /// The ErrorResponse, when the bytes are one.
        error: Option<crate::wire::ErrorFields>,
        /// The first bytes as received (at most 512).
        bytes: Vec<u8>,
    },
    Other(String),
}

/// What the server saw of the session, from pg_stat_ssl.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSslView {
    pub ssl: bool,
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub client_dn: Option<String>,
    pub client_serial: Option<String>,
    pub issuer_dn: Option<String>,
    /// Seconds since the server's backend for this session started.
    pub backend_age_secs: Option<i64>,
    /// Seconds from the doctor's connect to the answer (for comparing with the backend's
    /// age: a much older backend is a pooled server connection).
    pub probe_secs: Option<u64>,
}

/// A way the server's view cannot describe the connection the doctor made: the row belongs
/// to an intermediary's own connection to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewContradiction {
    /// The doctor used TLS; the row says ssl = false.
    NoTls,
    /// The doctor presented a client certificate; the row has none.
    NoClientCert,
    /// The row names another TLS version than the one negotiated.
    OtherVersion { ours: String, theirs: String },
    /// The backend is older than the doctor's connection (by more than 2 s of slack).
    OlderBackend {
        backend_secs: i64,
        connection_secs: u64,
    },
}

impl ServerSslView {
    /// How this view contradicts a connection that negotiated `version` and did or did not
    /// present a client certificate.
    pub fn contradictions(&self, version: &str, client_cert_sent: bool) -> Vec<ViewContradiction> {
        let mut found = Vec::new();
        if !self.ssl {
            found.push(ViewContradiction::NoTls);
        } else if client_cert_sent && self.client_dn.is_none() {
            found.push(ViewContradiction::NoClientCert);
        } else if let Some(theirs) = self.version.as_ref().filter(|v| v.as_str() != version) {
            found.push(ViewContradiction::OtherVersion {
                ours: version.into(),
                theirs: theirs.clone(),
            });
        }
        if let (Some(age), Some(ours)) = (self.backend_age_secs, self.probe_secs) {
            if age > ours as i64 + 2 {
                found.push(ViewContradiction::OlderBackend {
                    backend_secs: age,
                    connection_secs: ours,
                });
            }
        }
        found
    }
}

/// What a suspected intermediary answered to `SHOW pool_version` (pgpool-II answers it
/// itself; anything that passes the query on gets PostgreSQL's refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolerVersion {
    Answered(String),
    Refused(Box<ErrorFields>),
}

/// How far authentication got before the server's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStage {
    /// Before any authentication request (hba, startup checks).
    BeforeAuth,
    /// After a password or SCRAM proof was sent, with no valid SASLFinal.
    AfterPassword,
    /// After the server proved it knows the password (valid SCRAM SASLFinal).
    AfterSaslFinal,
    /// After AuthenticationOk: role, database and connection-limit checks.
    AfterAuthOk,
    /// After ReadyForQuery, in answer to the first query, ending the session: a pooler that
    /// served the login itself and then found no server connection (PgBouncer's
    /// `server login has been failing`).
    FirstQuery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupOutcome {
    Session {
        method: String,
        server_version: Option<String>,
        server_ssl: Option<ServerSslView>,
        /// SCRAM-SHA-256-PLUS with tls-server-end-point was completed.
        channel_binding_used: bool,
        /// The result of `StartupParams::extra_query`, when one was asked.
        query: Option<QueryResult>,
        /// The pg_stat_ssl query was answered with a flood of rows or errors.
        flood: Option<Flood>,
        /// Asked only when the server's view contradicts this connection (an intermediary)
        /// and the diagnosis is a full one.
        pooler_version: Option<PoolerVersion>,
    },
    /// libpq's channel_binding=require refused to continue (its reason).
    ChannelBinding(String),
    /// A password was requested and none was available (psql -w: no password supplied).
    PasswordNeeded {
        method: String,
    },
    /// A password was available but libpq at the requested mode would not send it here.
    Withheld {
        method: String,
    },
    ServerError {
        fields: ErrorFields,
        stage: AuthStage,
        method: Option<String>,
    },
    /// A TLS alert on the first read after the StartupMessage (TLS 1.3 client-cert refusal).
    Alert(Alert),
    Closed,
    Reset(String),
    Timeout(TimeoutKind),
    Protocol(String),
    /// The SCRAM server-final message did not prove the server knows the password.
    ServerProofInvalid,
    UnsupportedAuth {
        method: String,
    },
    /// More messages than any real server sends before the session is ready (a hostile peer
    /// keeping the client busy); the doctor stopped reading.
    Flood(Flood),
}

/// A flood of messages: what kind, and how many arrived before the doctor stopped counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flood {
    pub what: String,
    pub count: usize,
}

/// Everything seen on the TLS connection.
#[derive(Debug, Clone, Default)]
pub struct TlsAttempt {
    pub addr: Option<SocketAddr>,
    /// Our end of the connection: the client address the server sees (barring NAT).
    pub local_addr: Option<SocketAddr>,
    pub connect_error: Option<ConnectFailure>,
    pub reply: Option<SslReply>,
    pub handshake: Option<Result<HandshakeFacts, TlsFailure>>,
    pub chain: Vec<Vec<u8>>,
    /// The CA names of the server's CertificateRequest; None when it sent none.
    pub client_ca_names: Option<Vec<Vec<u8>>>,
    /// The TLS versions the ClientHello offered ("TLSv1.3", "TLSv1.2"), newest first.
    pub offered_versions: Vec<String>,
    pub client_cert_sent: bool,
    /// The client key loaded for libpq but not for the doctor's TLS library (e.g. P-521 with ring).
    pub client_key_unusable: Option<String>,
    pub startup: Option<StartupOutcome>,
    /// After `N`, libpq continues in plaintext on the same socket.
    pub plaintext_after_refusal: Option<StartupOutcome>,
    /// Connections made after this one to recover what it lost (a TLS 1.3 alert).
    pub follow_ups: u32,
}

/// Everything seen on the plaintext connection.
#[derive(Debug, Clone, Default)]
pub struct PlainAttempt {
    pub addr: Option<SocketAddr>,
    /// Our end of the connection: the client address the server sees (barring NAT).
    pub local_addr: Option<SocketAddr>,
    pub connect_error: Option<ConnectFailure>,
    pub startup: Option<StartupOutcome>,
}

/// Whether this connection may carry the password (libpq at the requested sslmode would use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPermit {
    Send,
    Withhold,
}

/// The rows and errors of a simple query (several statements allowed), as far as they are
/// kept: what a hostile server sends beyond the limits is counted, not held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub rows: Vec<Vec<Option<String>>>,
    pub errors: Vec<ErrorFields>,
    /// Rows, errors and other messages beyond the limits.
    pub rows_dropped: usize,
    pub errors_dropped: usize,
    pub other_messages: usize,
}

/// What one host's attempts saw, before judgement.
pub struct HostObservation {
    pub endpoint: Endpoint,
    pub tls: Option<TlsAttempt>,
    pub plain: Option<PlainAttempt>,
    /// After a failed direct handshake: the same server asked with an SSLRequest.
    pub ssl_request_probe: Option<TlsAttempt>,
    pub connections: u32,
}

impl HostObservation {
    /// The log lines the server writes about these attempts: a FATAL line for each session
    /// it refused, and "could not accept SSL connection" for each handshake it ended,
    /// including a client certificate refused after the handshake and the connection a
    /// follow-up made to recover that alert.
    /// The local addresses of every connection made (to find them in a pooler's log).
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        let tls = |t: &TlsAttempt| t.local_addr;
        self.tls
            .iter()
            .map(tls)
            .chain(self.ssl_request_probe.iter().map(tls))
            .chain(self.plain.iter().map(|p| p.local_addr))
            .flatten()
            .collect()
    }

    pub fn server_log_lines(&self) -> usize {
        let refused = |outcome: Option<&StartupOutcome>| {
            usize::from(matches!(outcome, Some(StartupOutcome::ServerError { .. })))
        };
        let tls = |t: &TlsAttempt| {
            usize::from(matches!(t.handshake, Some(Err(TlsFailure::Alert(_)))))
                + usize::from(matches!(t.startup, Some(StartupOutcome::Alert(_))))
                + t.follow_ups as usize
                + refused(t.startup.as_ref())
                + refused(t.plaintext_after_refusal.as_ref())
        };
        self.tls.as_ref().map(tls).unwrap_or(0)
            + self.ssl_request_probe.as_ref().map(tls).unwrap_or(0)
            + self
                .plain
                .as_ref()
                .map(|p| refused(p.startup.as_ref()))
                .unwrap_or(0)
    }
}

impl PlainAttempt {
    /// The server refused the plaintext session with an ErrorResponse: what makes
    /// sslmode=allow try again with TLS.
    pub fn ended_with_server_error(&self) -> bool {
        matches!(
            self.startup,
            Some(StartupOutcome::ServerError { stage, .. }) if stage != AuthStage::FirstQuery
        )
    }
}

/// Decides whether a connection may carry the password: only where libpq at that sslmode
/// would itself use the connection. The judgement implements it; the probe asks it.
pub trait PasswordGate: Sync {
    /// For a TLS connection at `mode` whose server presented `chain`.
    fn tls_permit(&self, mode: SslMode, chain: &[Vec<u8>]) -> PasswordPermit;
    /// Whether sslmode=prefer falls back to plaintext after this TLS attempt (so the
    /// plaintext connection is the one libpq would use).
    fn prefer_falls_back(&self, tls: &TlsAttempt) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_round_trip_their_codes_and_names() {
        for code in 0..=255u8 {
            assert_eq!(Alert::from_code(code).code(), code);
        }
        assert_eq!(Alert::from_code(48).name(), "unknown_ca");
        assert_eq!(Alert::from_code(200).name(), "unknown alert 200");
    }
}
