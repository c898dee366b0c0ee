//! The judgement without a server: synthetic observations in, cells and findings out.
//! `TABLE` holds one scenario per judgement code (the catalogue test checks that every code
//! is produced by some table); the tests after it pin libpq's sslmode rules.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::client_cert::ClientView;
use super::*;
use crate::catalogue::{Code, Severity};
use crate::client_cert::{NoCertificate, Pkcs12Contents};
use crate::finding::Finding;
use crate::observe::{
    Alert, AuthStage, ConnectFailure, Flood, HandshakeFacts, PlainAttempt, ServerSslView, SslReply,
    StartupOutcome, TimeoutKind, TlsAttempt, TlsFailure,
};
use crate::plan::Endpoint;
use crate::plan::{CertMode, Negotiation};
use crate::serverlog::LogReasons;
use crate::sslmode::SslMode;
use crate::testing::pki::{self, Ca, Issued, LeafSpec};
use crate::trust::{RootSource, RootState};
use crate::wire::ErrorFields;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One host as the probe might have seen it: every field a scenario can change.
#[derive(Clone)]
pub(crate) struct World {
    endpoint: Endpoint,
    requested: SslMode,
    local: LocalSetup,
    tls: Option<TlsAttempt>,
    plain: Option<PlainAttempt>,
    ssl_request_probe: Option<TlsAttempt>,
    now: i64,
    warn_days: i64,
    password_unknown: Option<String>,
    hba: Option<crate::hba::HbaContext>,
    server_log: Option<LogReasons>,
    negotiation: Negotiation,
}

struct Pki {
    ca: Ca,
    leaf: Issued,
}

fn pki() -> &'static Pki {
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let ca = Ca::root("Table Root");
        let leaf = ca.issue(&LeafSpec::server(
            "localhost",
            &["localhost"],
            &["127.0.0.1"],
        ));
        Pki { ca, leaf }
    })
}

fn addr(port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn session() -> StartupOutcome {
    StartupOutcome::Session {
        method: "scram-sha-256".into(),
        server_version: Some("17.2".into()),
        server_ssl: None,
        channel_binding_used: false,
        query: None,
        flood: None,
        pooler_version: None,
    }
}

fn facts() -> HandshakeFacts {
    HandshakeFacts {
        version: crate::plan::TlsVersion::V1_3,
        cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
        key_exchange_group: Some("X25519".into()),
        alpn: None,
    }
}

fn tls_with(chain: Vec<Vec<u8>>, startup: StartupOutcome) -> TlsAttempt {
    TlsAttempt {
        addr: addr(5432),
        local_addr: addr(40000),
        reply: Some(SslReply::Accepted),
        handshake: Some(Ok(facts())),
        chain,
        startup: Some(startup),
        ..Default::default()
    }
}

fn plain_with(startup: StartupOutcome) -> PlainAttempt {
    PlainAttempt {
        addr: addr(5432),
        local_addr: addr(40001),
        connect_error: None,
        startup: Some(startup),
    }
}

fn server_error(code: &str, message: &str) -> StartupOutcome {
    StartupOutcome::ServerError {
        fields: ErrorFields {
            severity: "FATAL".into(),
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
            // The shape of PostgreSQL's own ErrorResponse (a pooler's differs).
            file: Some("auth.c".into()),
            tags: "SVCMFLR".into(),
            pre_v3_text: None,
        },
        stage: AuthStage::BeforeAuth,
        method: None,
    }
}

fn loaded_roots(certs: Vec<Vec<u8>>) -> RootState {
    RootState::Loaded {
        source: RootSource::File(PathBuf::from("/home/alice/.postgresql/root.crt")),
        certs,
    }
}

fn no_client() -> ClientView {
    ClientView {
        leaf: None,
        loaded: false,
        none: Some(NoCertificate::DefaultMissing(PathBuf::from(
            "/home/alice/.postgresql/postgresql.crt",
        ))),
        pkcs12: None,
        cert_mode: Some(CertMode::Allow),
    }
}

impl World {
    /// A healthy server with a certificate from the root the client trusts, both
    /// connections working.
    pub(crate) fn healthy() -> World {
        let pki = pki();
        World {
            endpoint: Endpoint {
                host: "localhost".into(),
                hostaddr: None,
                scope_id: 0,
                port: 5432,
            },
            requested: SslMode::VerifyFull,
            local: LocalSetup {
                roots: loaded_roots(vec![pki.ca.issued.cert_der.clone()]),
                system_roots: false,
                crl: None,
                client_failure: None,
                client: no_client(),
                crl_ignored: None,
            },
            tls: Some(tls_with(vec![pki.leaf.cert_der.clone()], session())),
            plain: Some(plain_with(session())),
            ssl_request_probe: None,
            now: now(),
            warn_days: 30,
            password_unknown: None,
            hba: None,
            server_log: None,
            negotiation: Negotiation::Postgres,
        }
    }

    /// No root file: verify-ca and verify-full fail, the rest work over TLS.
    fn without_roots() -> World {
        let mut w = World::healthy();
        w.local.roots = RootState::Absent { path: None };
        w.requested = SslMode::Prefer;
        w
    }

    fn requested(mut self, mode: SslMode) -> World {
        self.requested = mode;
        self
    }

    fn tls(mut self, edit: impl FnOnce(&mut TlsAttempt)) -> World {
        edit(self.tls.get_or_insert_with(Default::default));
        self
    }

    fn startup_everywhere(mut self, outcome: StartupOutcome) -> World {
        if let Some(t) = &mut self.tls {
            t.startup = Some(outcome.clone());
        }
        if let Some(p) = &mut self.plain {
            p.startup = Some(outcome);
        }
        self
    }

    pub(crate) fn judge(&self) -> Judgement {
        judge(&EvalInput {
            endpoint: &self.endpoint,
            requested: self.requested,
            local: &self.local,
            tls: self.tls.as_ref(),
            plain: self.plain.as_ref(),
            now: self.now,
            warn_days: self.warn_days,
            user: "alice",
            dbname: "app",
            user_is_default: false,
            dbname_is_default: false,
            password_source: Some("PGPASSWORD".into()),
            password_unknown: self.password_unknown.as_deref(),
            hba: self.hba.as_ref(),
            server_log: self.server_log.as_ref(),
            negotiation: self.negotiation,
            ssl_request_probe: self.ssl_request_probe.as_ref(),
            pooler: None,
            pooler_log: None,
        })
    }
}

fn cell(j: &Judgement, mode: SslMode) -> (Option<bool>, bool, Option<Code>) {
    let c = &j.cells[&mode];
    (c.ok, c.encrypted, c.code)
}

fn codes(j: &Judgement) -> BTreeSet<Code> {
    j.findings.iter().map(|f| f.code).collect()
}

fn finding(j: &Judgement, code: Code) -> &Finding {
    j.findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code}: {:#?}", j.findings))
}

fn refused(alert: Alert) -> impl FnOnce(&mut TlsAttempt) {
    move |t| {
        t.handshake = Some(Err(TlsFailure::Alert(alert)));
        t.startup = None;
    }
}

fn client_sent(leaf: &Issued) -> impl FnOnce(&mut World) + '_ {
    move |w| {
        w.local.client = ClientView {
            leaf: crate::x509::summarize(&leaf.cert_der).ok(),
            loaded: true,
            none: None,
            pkcs12: None,
            cert_mode: Some(CertMode::Allow),
        };
        if let Some(t) = &mut w.tls {
            t.client_cert_sent = true;
            t.client_ca_names = Some(Vec::new());
        }
    }
}

fn with(mut w: World, edit: impl FnOnce(&mut World)) -> World {
    edit(&mut w);
    w
}

fn leaf_valid(days_before: i64, days_after: i64) -> Issued {
    let now = time::OffsetDateTime::now_utc();
    let mut spec = LeafSpec::server("localhost", &["localhost"], &["127.0.0.1"]);
    spec.not_before = now + time::Duration::days(days_before);
    spec.not_after = now + time::Duration::days(days_after);
    pki().ca.issue(&spec)
}

fn client_leaf(days_before: i64, days_after: i64) -> Issued {
    let now = time::OffsetDateTime::now_utc();
    let mut spec = LeafSpec::client("alice");
    spec.not_before = now + time::Duration::days(days_before);
    spec.not_after = now + time::Duration::days(days_after);
    pki().ca.issue(&spec)
}

/// An ErrorResponse as PgBouncer sends it: only severity, SQLSTATE 08P01 and message.
fn pgbouncer_error(message: &str) -> StartupOutcome {
    StartupOutcome::ServerError {
        fields: ErrorFields {
            severity: "FATAL".into(),
            code: "08P01".into(),
            message: message.into(),
            tags: "SCM".into(),
            ..Default::default()
        },
        stage: AuthStage::BeforeAuth,
        method: None,
    }
}

/// pgpool-II's ErrorResponse: its own source file, no non-localised severity.
fn pgpool_error(message: &str, detail: &str, pre_v3: Option<&str>) -> StartupOutcome {
    StartupOutcome::ServerError {
        fields: ErrorFields {
            severity: "ERROR".into(),
            code: "XX000".into(),
            message: message.into(),
            detail: Some(detail.into()),
            file: Some("pool_auth.c".into()),
            tags: "SCMDFLR".into(),
            pre_v3_text: pre_v3.map(String::from),
            ..Default::default()
        },
        stage: AuthStage::BeforeAuth,
        method: None,
    }
}

fn client_named(cn: &str) -> Issued {
    pki().ca.issue(&LeafSpec::client(cn))
}

fn chain_of(leaf: &Issued) -> impl FnOnce(&mut TlsAttempt) + '_ {
    move |t| t.chain = vec![leaf.cert_der.clone()]
}

/// The requested sslmode and the host, for building a report of the world.
impl World {
    pub(crate) fn requested_mode(&self) -> SslMode {
        self.requested
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Scenarios whose reports the renderers' snapshot tests show (name, world).
pub(crate) fn report_scenarios() -> Vec<(&'static str, World)> {
    let wanted = [
        ("healthy", None),
        ("root_cert_missing", Some(Code::RootCertMissing)),
        ("unknown_ca", Some(Code::ServerCertUnknownCa)),
        ("hostname_mismatch", Some(Code::ServerCertHostnameMismatch)),
        ("expired", Some(Code::ServerCertExpired)),
        ("hba_no_entry", Some(Code::HbaNoEntry)),
        ("password_failed", Some(Code::PasswordFailed)),
        ("plaintext_fallback", Some(Code::PlaintextFallback)),
        ("client_cert_unknown_ca", Some(Code::ClientCertUnknownCa)),
        ("tcp_refused", Some(Code::TcpConnectFailed)),
    ];
    let table = table();
    wanted
        .into_iter()
        .map(|(name, code)| match code {
            None => (name, World::healthy()),
            Some(code) => {
                let (_, world, _) = table
                    .iter()
                    .find(|(_, _, c)| *c == code)
                    .unwrap_or_else(|| panic!("no scenario for {code}"));
                (name, world.clone())
            }
        })
        .collect()
}

/// One scenario per code that eval produces from an observation.
fn table() -> Vec<(&'static str, World, Code)> {
    let pki = pki();
    let bob = client_named("bob");
    let upper_alice = client_named("ALICE");
    let through_pgbouncer = |w: World| {
        let mut w = w;
        w.plain = Some(plain_with(pgbouncer_error("SSL required")));
        w
    };
    let refused_tcp = ConnectFailure::Refused {
        addrs: vec![addr(5432).unwrap()],
        reason: "Connection refused".into(),
    };
    let no_tcp = |mut w: World, failure: ConnectFailure| {
        w.tls = Some(TlsAttempt {
            connect_error: Some(failure.clone()),
            ..Default::default()
        });
        w.plain = Some(PlainAttempt {
            connect_error: Some(failure),
            ..Default::default()
        });
        w
    };
    let crl_dir = tempfile::tempdir().unwrap().keep();
    let crl_file = pki::write_file(
        &crl_dir,
        "root.crl",
        pki.ca.crl_pem(&[&pki.leaf]).as_bytes(),
        0o644,
    );
    let intermediate = pki.ca.intermediate("Table Intermediate");
    let below_intermediate =
        intermediate.issue(&LeafSpec::server("localhost", &["localhost"], &[]));
    let weak = {
        use crate::testing::ossl_pki::{KeyKind, OsslCa, Spec};
        OsslCa::from_rcgen(&pki.ca).issue(
            &Spec::v3_server("localhost", &["localhost"], &[], KeyKind::EcP256)
                .key(KeyKind::Rsa1024),
        )
    };
    let client_only = {
        let mut spec = LeafSpec::server("localhost", &["localhost"], &[]);
        spec.server_auth = false;
        spec.client_auth = true;
        pki.ca.issue(&spec)
    };
    let self_signed = pki::self_signed_server("localhost");
    let alice = client_leaf(-1, 365);
    let expired_alice = client_leaf(-30, -1);
    let future_alice = client_leaf(2, 30);
    let hba = crate::hba::HbaContext {
        hba: crate::hba::parse_hba(
            "hostssl app alice 127.0.0.1/32 scram-sha-256\n",
            std::path::Path::new("/etc/postgresql/pg_hba.conf"),
            17,
        ),
        ident: None,
        source: "--hba /etc/postgresql/pg_hba.conf".into(),
    };
    vec![
        (
            "PgBouncer refuses the certificate (auth_type = cert)",
            with(through_pgbouncer(World::healthy()), client_sent(&bob))
                .tls(|t| t.startup = Some(pgbouncer_error("certificate authentication failed"))),
            Code::PoolerCertAuthFailed,
        ),
        (
            "PgBouncer cannot log in to the server (client_login_timeout)",
            through_pgbouncer(World::healthy())
                .tls(|t| t.startup = Some(pgbouncer_error("client_login_timeout (server down)"))),
            Code::PoolerServerLoginFailed,
        ),
        (
            "PgBouncer logs in from its cache, then ends the session at the first query (server_login_retry)",
            through_pgbouncer(World::healthy()).tls(|t| {
                let mut ended = pgbouncer_error(
                    "server login has been failing, try again later (server_login_retry)",
                );
                if let StartupOutcome::ServerError { stage, .. } = &mut ended {
                    *stage = AuthStage::FirstQuery;
                }
                t.startup = Some(ended);
            }),
            Code::PoolerServerLoginFailed,
        ),
        (
            "PgBouncer knows no such user (neither auth_file nor auth_query)",
            through_pgbouncer(World::healthy())
                .tls(|t| t.startup = Some(pgbouncer_error("no such user"))),
            Code::RoleMissing,
        ),
        (
            "PgBouncer relays the server's refusal of its own login",
            World::healthy().tls(|t| {
                t.startup = Some(pgbouncer_error(
                    "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"app\", no encryption",
                ))
            }),
            Code::PoolerServerLoginFailed,
        ),
        (
            "PgBouncer's plaintext refusal names it",
            through_pgbouncer(World::healthy()),
            Code::PoolerDetected,
        ),
        (
            "PgBouncer accepts a CN PostgreSQL would not",
            with(through_pgbouncer(World::healthy()), client_sent(&upper_alice)).tls(|t| {
                t.startup = Some(StartupOutcome::Session {
                    method: "trust".into(),
                    server_version: Some("15.18".into()),
                    server_ssl: None,
                    channel_binding_used: false,
                    query: None,
                    flood: None,
                    pooler_version: None,
                })
            }),
            Code::PoolerCertMatchDiffers,
        ),
        (
            "a pooler demands a client certificate in the TLS handshake",
            World::healthy().tls(refused(Alert::CertificateRequired)),
            Code::ClientCertMissing,
        ),
        (
            "nothing listens on the Unix socket",
            no_tcp(
                World::healthy(),
                ConnectFailure::Socket {
                    path: "/var/run/postgresql/.s.PGSQL.5432".into(),
                    reason: "No such file or directory".into(),
                },
            ),
            Code::SocketConnectFailed,
        ),
        (
            "the port refuses TCP",
            no_tcp(World::healthy(), refused_tcp.clone()),
            Code::TcpConnectFailed,
        ),
        (
            "SYNs vanish",
            no_tcp(
                World::healthy(),
                ConnectFailure::Timeout {
                    kind: TimeoutKind::Step,
                    addrs: vec![addr(5432).unwrap()],
                },
            ),
            Code::ConnectTimeout,
        ),
        (
            "an SSH server answers",
            World::healthy().tls(|t| {
                t.reply = Some(SslReply::Foreign {
                    bytes: b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
                    peer: "an SSH server".into(),
                });
                t.handshake = None;
                t.startup = None;
            }),
            Code::NotPostgres,
        ),
        (
            "bytes after the S",
            World::healthy().tls(|t| {
                t.reply = Some(SslReply::Injected {
                    extra: b"HELLO".to_vec(),
                });
                t.handshake = None;
            }),
            Code::SslResponseInjected,
        ),
        (
            "E before TLS",
            World::healthy().tls(|t| {
                t.reply = Some(SslReply::ServerError {
                    text: "could not fork new process for connection".into(),
                });
                t.handshake = None;
            }),
            Code::ServerSslError,
        ),
        (
            "N to the SSLRequest",
            World::healthy().requested(SslMode::Require).tls(|t| {
                t.reply = Some(SslReply::Refused);
                t.handshake = None;
                t.startup = None;
                t.plaintext_after_refusal = Some(session());
            }),
            Code::ServerSslUnsupported,
        ),
        (
            "the server ends the handshake",
            World::healthy().tls(refused(Alert::InternalError)),
            Code::TlsHandshakeFailed,
        ),
        (
            "no version in common",
            World::healthy().tls(refused(Alert::ProtocolVersion)),
            Code::TlsVersionUnsupported,
        ),
        (
            "verify-full without a root file",
            World::without_roots().requested(SslMode::VerifyFull),
            Code::RootCertMissing,
        ),
        (
            "a root file that does not load",
            with(World::healthy(), |w| {
                w.local.roots = RootState::Unreadable {
                    path: "/home/alice/.postgresql/root.crt".into(),
                    reason: "no start line".into(),
                }
            }),
            Code::RootCertUnreadable,
        ),
        (
            "an expired server certificate",
            World::healthy().tls(chain_of(&leaf_valid(-30, -2))),
            Code::ServerCertExpired,
        ),
        (
            "a server certificate from the future",
            World::healthy().tls(chain_of(&leaf_valid(3, 30))),
            Code::ServerCertNotYetValid,
        ),
        (
            "a self-signed server certificate",
            World::healthy().tls(chain_of(&self_signed)),
            Code::ServerCertUnknownCa,
        ),
        (
            "a revoked server certificate",
            with(World::healthy(), |w| {
                w.local.crl = Some(crate::trust::CrlState {
                    file: Some(crl_file.clone()),
                    dir: None,
                })
            }),
            Code::ServerCertRevoked,
        ),
        (
            "a CRL for the root only, and an intermediate without one",
            with(
                World::healthy().tls(|t| {
                    t.chain = vec![
                        below_intermediate.cert_der.clone(),
                        intermediate.issued.cert_der.clone(),
                    ]
                }),
                |w| {
                    let only_root = pki::write_file(
                        &crl_dir,
                        "only-root.crl",
                        pki.ca.crl_pem(&[]).as_bytes(),
                        0o644,
                    );
                    w.local.crl = Some(crate::trust::CrlState {
                        file: Some(only_root),
                        dir: None,
                    })
                },
            ),
            Code::CrlIncomplete,
        ),
        (
            "a host name the certificate does not hold",
            with(World::healthy(), |w| w.endpoint.host = "db.example.com".into()),
            Code::ServerCertHostnameMismatch,
        ),
        (
            "a 1024-bit RSA server key",
            World::healthy().tls(chain_of(&weak)),
            Code::ServerCertWeakKey,
        ),
        (
            "a certificate for clients only",
            World::healthy().tls(chain_of(&client_only)),
            Code::ServerCertWrongPurpose,
        ),
        (
            "bytes that are no certificate",
            World::healthy().tls(|t| t.chain = vec![b"not a certificate".to_vec()]),
            Code::ServerCertInvalid,
        ),
        (
            "a CRL file libpq ignores",
            with(World::healthy(), |w| {
                w.local.crl_ignored = Some((
                    "/home/alice/.postgresql/root.crl".into(),
                    "it holds no CRL".into(),
                ))
            }),
            Code::CrlIgnored,
        ),
        (
            "a certificate that expires in ten days",
            World::healthy().tls(chain_of(&leaf_valid(-300, 10))),
            Code::ServerCertExpiringSoon,
        ),
        (
            "a self-signed certificate the client trusts as its own root",
            with(World::healthy().tls(chain_of(&self_signed)), |w| {
                w.local.roots = loaded_roots(vec![self_signed.cert_der.clone()])
            }),
            Code::ServerCertRustlsDiffers,
        ),
        (
            "no pg_hba.conf line",
            World::healthy().startup_everywhere(server_error(
                "28000",
                "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"app\", SSL encryption",
            )),
            Code::HbaNoEntry,
        ),
        (
            "a reject line",
            World::healthy().startup_everywhere(server_error(
                "28000",
                "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"alice\", database \"app\", SSL encryption",
            )),
            Code::HbaReject,
        ),
        (
            "no such role",
            World::healthy().startup_everywhere(server_error("28000", "role \"alice\" does not exist")),
            Code::RoleMissing,
        ),
        (
            "no such database",
            World::healthy().startup_everywhere(server_error("3D000", "database \"app\" does not exist")),
            Code::DatabaseMissing,
        ),
        (
            "a password is asked and none is known",
            World::healthy().startup_everywhere(StartupOutcome::PasswordNeeded {
                method: "scram-sha-256".into(),
            }),
            Code::PasswordRequired,
        ),
        (
            "the password is wrong",
            World::healthy().startup_everywhere(server_error(
                "28P01",
                "password authentication failed for user \"alice\"",
            )),
            Code::PasswordFailed,
        ),
        (
            "the password was withheld",
            World::healthy().startup_everywhere(StartupOutcome::Withheld {
                method: "md5".into(),
            }),
            Code::CredentialsWithheld,
        ),
        (
            "no free slots",
            World::healthy().startup_everywhere(server_error("53300", "sorry, too many clients already")),
            Code::TooManyConnections,
        ),
        (
            "the server is starting",
            World::healthy().startup_everywhere(server_error("57P03", "the database system is starting up")),
            Code::ServerNotReady,
        ),
        (
            "the role may not log in",
            World::healthy().startup_everywhere(server_error(
                "28000",
                "role \"alice\" is not permitted to log in",
            )),
            Code::ServerRefused,
        ),
        (
            "the server hangs up during startup",
            World::healthy().startup_everywhere(StartupOutcome::Closed),
            Code::ConnectionLost,
        ),
        (
            "nonsense during startup",
            World::healthy().startup_everywhere(StartupOutcome::Protocol("unexpected message 'Z'".into())),
            Code::ProtocolViolation,
        ),
        (
            "a SCRAM server signature that does not verify",
            World::healthy().startup_everywhere(StartupOutcome::ServerProofInvalid),
            Code::ScramServerProofInvalid,
        ),
        (
            "GSSAPI authentication",
            World::healthy().startup_everywhere(StartupOutcome::UnsupportedAuth {
                method: "GSSAPI".into(),
            }),
            Code::AuthMethodUnsupported,
        ),
        (
            "clientcert=verify-ca without a certificate",
            World::healthy().startup_everywhere(server_error(
                "28000",
                "connection requires a valid client certificate",
            )),
            Code::ClientCertMissing,
        ),
        (
            "an expired client certificate",
            with(World::healthy(), client_sent(&expired_alice))
                .tls(refused(Alert::CertificateExpired)),
            Code::ClientCertExpired,
        ),
        (
            "a client certificate from the future",
            with(World::healthy(), client_sent(&future_alice))
                .tls(refused(Alert::BadCertificate)),
            Code::ClientCertNotYetValid,
        ),
        (
            "a client certificate from a CA the server does not know",
            with(World::healthy(), client_sent(&alice)).tls(refused(Alert::UnknownCa)),
            Code::ClientCertUnknownCa,
        ),
        (
            "a revoked client certificate",
            with(World::healthy(), client_sent(&alice)).tls(refused(Alert::CertificateRevoked)),
            Code::ClientCertRevoked,
        ),
        (
            "a client certificate without clientAuth",
            with(World::healthy(), client_sent(&alice))
                .tls(refused(Alert::UnsupportedCertificate)),
            Code::ClientCertWrongPurpose,
        ),
        (
            "a client certificate that expires soon",
            with(World::healthy(), client_sent(&client_leaf(-300, 5))),
            Code::ClientCertExpiringSoon,
        ),
        (
            "sslcert is a PKCS#12 bundle",
            with(World::healthy(), |w| {
                w.local.client.pkcs12 = Some(Pkcs12Contents {
                    path: "/home/alice/alice.p12".into(),
                    leaf: crate::x509::summarize(&alice.cert_der).ok(),
                    ca_count: 1,
                    has_key: true,
                    error: None,
                })
            }),
            Code::ClientCertPkcs12,
        ),
        (
            "a P-521 client key with ring",
            with(World::healthy(), client_sent(&alice)).tls(|t| {
                t.client_key_unusable = Some("P-521".into());
            }),
            Code::ClientKeyUnsupported,
        ),
        (
            "sslcertmode=require and no CertificateRequest",
            with(World::healthy(), |w| {
                w.local.client.cert_mode = Some(CertMode::Require)
            }),
            Code::ServerNoClientCa,
        ),
        (
            "channel_binding=require without SCRAM-PLUS",
            World::healthy().startup_everywhere(StartupOutcome::ChannelBinding(
                "channel binding required, but server authenticated client without channel binding".into(),
            )),
            Code::ChannelBindingFailed,
        ),
        (
            "a certificate CN that is not the user",
            with(World::healthy(), client_sent(&client_leaf(-1, 300))).startup_everywhere(
                server_error("28000", "certificate authentication failed for user \"alice\""),
            ),
            Code::ClientCertCnMismatch,
        ),
        (
            "an alert no other code names",
            with(World::healthy(), client_sent(&alice)).tls(refused(Alert::CertificateUnknown)),
            Code::ClientCertRejected,
        ),
        (
            "clientcert without ssl_ca_file on the server",
            World::healthy().startup_everywhere(StartupOutcome::ServerError {
                fields: ErrorFields {
                    severity: "FATAL".into(),
                    code: "F0000".into(),
                    message: "client certificates can only be checked if a root certificate store is available".into(),
                    detail: None,
                    hint: None,
                    file: Some("auth.c".into()),
                    tags: "SVCMFLR".into(),
                    pre_v3_text: None,
                },
                stage: AuthStage::BeforeAuth,
                method: None,
            }),
            Code::ServerCaMissing,
        ),
        (
            "the rules given with --hba",
            with(World::healthy(), |w| w.hba = Some(hba.clone())),
            Code::HbaRule,
        ),
        (
            "the server's log",
            with(World::healthy(), |w| {
                w.server_log = Some(LogReasons {
                    matched: None,
                    reasons: vec!["Connection matched file \"pg_hba.conf\" line 2".into()],
                    source: "/var/log/postgresql.log".into(),
                })
            }),
            Code::ServerLogReason,
        ),
        (
            "direct TLS to a server that hangs up",
            with(World::healthy(), |w| {
                w.negotiation = Negotiation::Direct;
                w.plain = None;
                w.tls = Some(TlsAttempt {
                    addr: addr(5432),
                    handshake: Some(Err(TlsFailure::Eof)),
                    ..Default::default()
                });
                w.ssl_request_probe = Some(TlsAttempt {
                    reply: Some(SslReply::Accepted),
                    ..Default::default()
                });
            }),
            Code::DirectTlsUnsupported,
        ),
        (
            "direct TLS at sslmode=prefer",
            with(World::healthy().requested(SslMode::Prefer), |w| {
                w.negotiation = Negotiation::Direct
            }),
            Code::DirectTlsWeakSslmode,
        ),
        (
            "prefer falls back to plaintext",
            World::without_roots().tls(refused(Alert::HandshakeFailure)),
            Code::PlaintextFallback,
        ),
        (
            "a Unix socket",
            with(World::healthy().requested(SslMode::Prefer), |w| {
                w.endpoint.host = "/var/run/postgresql".into();
                w.tls = None;
            }),
            Code::UnixSocket,
        ),
        (
            "a flood of rows for pg_stat_ssl",
            World::healthy().tls(|t| {
                t.startup = Some(StartupOutcome::Session {
                    method: "trust".into(),
                    server_version: None,
                    server_ssl: None,
                    channel_binding_used: false,
                    query: None,
                    flood: Some(Flood {
                        what: "rows".into(),
                        count: 10_000,
                    }),
                    pooler_version: None,
                })
            }),
            Code::ServerFlood,
        ),
        (
            "sslmode=allow where the plaintext attempt never connected",
            with(World::healthy().requested(SslMode::Allow), |w| {
                w.tls = None;
                w.plain = Some(plain_with(server_error("28000", "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"app\", no encryption")));
            }),
            Code::NotProbed,
        ),
        (
            "a passfile the doctor could not read",
            with(
                World::healthy().startup_everywhere(StartupOutcome::PasswordNeeded {
                    method: "md5".into(),
                }),
                |w| w.password_unknown = Some("the passfile is over 1 MiB".into()),
            ),
            Code::PassfileUnread,
        ),
        (
            "TLS 1.2 with an RSA-PSS key",
            World::healthy().tls(|t| {
                t.handshake = Some(Err(TlsFailure::Unemulated("rsa_pss_pss_sha256".into())));
                t.startup = None;
            }),
            Code::TlsNotEmulated,
        ),
        (
            "sslrootcert=system at prefer",
            with(World::healthy().requested(SslMode::Prefer), |w| {
                w.local.system_roots = true
            }),
            Code::SystemRootWeakSslmode,
        ),
        (
            "a working session",
            World::healthy().tls(|t| {
                t.startup = Some(StartupOutcome::Session {
                    method: "scram-sha-256".into(),
                    server_version: Some("17.2".into()),
                    server_ssl: Some(ServerSslView {
                        ssl: true,
                        version: Some("TLSv1.3".into()),
                        ..Default::default()
                    }),
                    channel_binding_used: false,
                    query: None,
                    flood: None,
                    pooler_version: None,
                })
            }),
            Code::TlsSession,
        ),
    ]
}

/// Every code the judgement table produces (for the catalogue's coverage test).
pub(crate) fn codes_produced() -> BTreeSet<Code> {
    table()
        .iter()
        .flat_map(|(_, w, _)| codes(&w.judge()))
        .collect()
}

#[test]
fn every_scenario_yields_its_code() {
    for (name, world, code) in table() {
        let j = world.judge();
        assert!(
            codes(&j).contains(&code),
            "{name}: expected {code}, got {:?}\n{:#?}",
            codes(&j),
            j.cells
        );
    }
}

#[test]
fn a_healthy_server_works_at_every_mode() {
    let j = World::healthy().judge();
    for mode in SslMode::ALL {
        // disable and allow start in plaintext, and allow stays there when it works.
        let encrypted = mode > SslMode::Allow;
        assert_eq!(cell(&j, mode), (Some(true), encrypted, None), "{mode}");
    }
    assert!(j.findings.iter().all(|f| f.severity != Severity::Error));
}

#[test]
fn without_a_root_file_only_the_verifying_modes_fail() {
    let j = World::without_roots().judge();
    for mode in [SslMode::Allow, SslMode::Prefer, SslMode::Require] {
        assert_eq!(cell(&j, mode).0, Some(true), "{mode}");
    }
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        assert_eq!(
            cell(&j, mode),
            (Some(false), true, Some(Code::RootCertMissing)),
            "{mode}"
        );
    }
    // The failure at a stricter mode is a warning at prefer, not an error.
    assert_eq!(
        finding(&j, Code::RootCertMissing).severity,
        Severity::Warning
    );
}

#[test]
fn a_root_file_turns_verification_on_for_prefer_which_then_falls_back() {
    let j = World::healthy()
        .requested(SslMode::Prefer)
        .tls(chain_of(&pki::self_signed_server("localhost")))
        .judge();
    assert_eq!(cell(&j, SslMode::Prefer), (Some(true), false, None));
    assert_eq!(
        cell(&j, SslMode::Require),
        (Some(false), true, Some(Code::ServerCertUnknownCa))
    );
    let f = finding(&j, Code::ServerCertUnknownCa);
    assert!(f.evidence.iter().any(|e| e.key == "why_verified"), "{f:?}");
    assert!(codes(&j).contains(&Code::PlaintextFallback));
}

#[test]
fn a_handshake_failure_falls_back_at_prefer_but_not_at_require() {
    let j = World::without_roots()
        .tls(refused(Alert::HandshakeFailure))
        .judge();
    assert_eq!(cell(&j, SslMode::Prefer), (Some(true), false, None));
    assert_eq!(
        cell(&j, SslMode::Require),
        (Some(false), true, Some(Code::TlsHandshakeFailed))
    );
    assert_eq!(cell(&j, SslMode::Allow), (Some(true), false, None));
}

#[test]
fn allow_retries_with_tls_only_after_a_server_error() {
    let hostssl_only = "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"app\", no encryption";
    let j = with(World::without_roots().requested(SslMode::Allow), |w| {
        w.plain = Some(plain_with(server_error("28000", hostssl_only)))
    })
    .judge();
    assert_eq!(cell(&j, SslMode::Disable).0, Some(false));
    assert_eq!(cell(&j, SslMode::Allow), (Some(true), true, None));
    // A plaintext connection that is lost is not retried.
    let j = with(World::without_roots().requested(SslMode::Allow), |w| {
        w.plain = Some(plain_with(StartupOutcome::Closed))
    })
    .judge();
    assert_eq!(
        cell(&j, SslMode::Allow),
        (Some(false), false, Some(Code::ConnectionLost))
    );
}

#[test]
fn a_tls13_client_certificate_alert_after_finished_does_not_fall_back() {
    let alice = client_leaf(-1, 365);
    let j = with(World::without_roots(), client_sent(&alice))
        .tls(|t| t.startup = Some(StartupOutcome::Alert(Alert::UnknownCa)))
        .judge();
    assert_eq!(
        cell(&j, SslMode::Prefer),
        (Some(false), true, Some(Code::ClientCertUnknownCa))
    );
    let f = finding(&j, Code::ClientCertUnknownCa);
    assert!(f.evidence.iter().any(|e| e.key == "prefer_note"), "{f:?}");
    // During the handshake (TLS 1.2) the same refusal lets prefer fall back.
    let j = with(World::without_roots(), client_sent(&alice))
        .tls(refused(Alert::UnknownCa))
        .judge();
    assert_eq!(cell(&j, SslMode::Prefer), (Some(true), false, None));
}

#[test]
fn the_password_goes_only_where_libpq_would_use_the_connection() {
    let pki = pki();
    let healthy = World::healthy();
    let gate = Gate {
        local: &healthy.local,
        endpoint: &healthy.endpoint,
        now: healthy.now,
        user: "alice",
        dbname: "app",
        negotiation: Negotiation::Postgres,
    };
    use crate::observe::{PasswordGate, PasswordPermit};
    let good = vec![pki.leaf.cert_der.clone()];
    let stranger = vec![pki::self_signed_server("localhost").cert_der];
    assert_eq!(
        gate.tls_permit(SslMode::VerifyFull, &good),
        PasswordPermit::Send
    );
    assert_eq!(
        gate.tls_permit(SslMode::VerifyFull, &stranger),
        PasswordPermit::Withhold
    );
    // A root file makes libpq verify at require too: a stranger's chain gets no password.
    assert_eq!(
        gate.tls_permit(SslMode::Require, &stranger),
        PasswordPermit::Withhold
    );
    // Prefer falls back after a refused chain, so the plaintext connection is the one used.
    let refused_chain = tls_with(stranger, session());
    assert!(gate.prefer_falls_back(&refused_chain));
    assert!(!gate.prefer_falls_back(&tls_with(good, session())));
    // Without a root file, require sends it on any chain; verify-ca does not.
    let bare = World::without_roots();
    let gate = Gate {
        local: &bare.local,
        ..gate
    };
    let other = vec![pki::self_signed_server("elsewhere").cert_der];
    assert_eq!(
        gate.tls_permit(SslMode::Require, &other),
        PasswordPermit::Send
    );
    assert_eq!(
        gate.tls_permit(SslMode::VerifyCa, &other),
        PasswordPermit::Withhold
    );
}

#[test]
fn every_server_log_line_is_kept_in_the_evidence() {
    let lines = vec![
        "FATAL:  password authentication failed for user \"alice\"".to_string(),
        "DETAIL:  Role \"alice\" does not exist.".to_string(),
        "Connection matched file \"pg_hba.conf\" line 3".to_string(),
    ];
    let j = with(
        World::healthy().startup_everywhere(server_error(
            "28P01",
            "password authentication failed for user \"alice\"",
        )),
        |w| {
            w.server_log = Some(LogReasons {
                matched: None,
                reasons: lines.clone(),
                source: "/var/log/postgresql.log".into(),
            })
        },
    )
    .judge();
    let said = |f: &Finding, key: &str| -> Vec<String> {
        f.evidence
            .iter()
            .filter(|e| e.key == key)
            .map(|e| e.value.to_string())
            .collect()
    };
    assert_eq!(
        said(finding(&j, Code::ServerLogReason), "server_says"),
        lines
    );
    assert_eq!(said(finding(&j, Code::PasswordFailed), "server_log"), lines);
    // The report keeps them too, in order.
    let out = crate::report::finding_out(finding(&j, Code::PasswordFailed));
    let kept: Vec<String> = out
        .evidence
        .iter()
        .filter(|e| e.key == "server_log")
        .map(|e| e.value.for_people())
        .collect();
    assert_eq!(kept, lines);
}

#[test]
fn verify_full_compares_the_host_not_the_address() {
    let j = with(World::healthy(), |w| {
        w.endpoint.host = String::new();
        w.endpoint.hostaddr = Some("127.0.0.1".parse().unwrap());
    })
    .judge();
    assert_eq!(
        cell(&j, SslMode::VerifyFull),
        (Some(false), true, Some(Code::ServerCertHostnameMismatch))
    );
    assert_eq!(cell(&j, SslMode::VerifyCa).0, Some(true));
}

#[test]
fn the_server_view_of_another_connection_reveals_an_intermediary() {
    let alice = client_leaf(-1, 365);
    let world = with(World::healthy(), client_sent(&alice)).tls(|t| {
        t.startup = Some(StartupOutcome::Session {
            method: "trust".into(),
            server_version: Some("15.18".into()),
            server_ssl: Some(ServerSslView {
                ssl: true,
                version: Some("TLSv1.3".into()),
                ..Default::default()
            }),
            channel_binding_used: false,
            query: None,
            flood: None,
            pooler_version: None,
        })
    });
    let j = world.judge();
    let found = finding(&j, Code::PoolerDetected);
    assert!(found.summary.contains("intermediary"), "{}", found.summary);
    let session = finding(&j, Code::TlsSession);
    assert!(session.evidence.iter().any(|e| e.key == "server_view_is"));
    // PostgreSQL's own errors (V, F, L, R present) name no pooler.
    assert!(!codes(&World::healthy().judge()).contains(&Code::PoolerDetected));
}

#[test]
fn pgbouncer_refusals_tell_a_name_mismatch_from_a_missing_user() {
    let bob = client_named("bob");
    let refused = |leaf: &Issued| {
        with(World::healthy(), client_sent(leaf))
            .tls(|t| t.startup = Some(pgbouncer_error("certificate authentication failed")))
            .judge()
    };
    let j = refused(&bob);
    let f = finding(&j, Code::PoolerCertAuthFailed);
    assert_eq!(
        f.evidence.iter().filter(|e| e.key == "candidate").count(),
        2
    );
    assert!(!codes(&j).contains(&Code::ClientCertCnMismatch));
    let j = refused(&client_leaf(-1, 365));
    let f = finding(&j, Code::PoolerCertAuthFailed);
    assert!(f.evidence.iter().any(|e| e.key == "cause"));
    assert!(f.fix.as_deref().unwrap_or_default().contains("auth_file"));
}

#[test]
fn pgpool_is_told_by_its_source_files_and_compares_cns_without_case() {
    let pgpool_error = |message: &str, detail: &str| pgpool_error(message, detail, None);
    let bob = client_named("bob");
    let j = with(World::healthy(), client_sent(&bob))
        .tls(|t| {
            t.startup = Some(pgpool_error(
                "CERT authentication failed",
                "no valid certificate presented",
            ))
        })
        .judge();
    let f = finding(&j, Code::PoolerCertAuthFailed);
    assert!(f.summary.contains("pgpool-II"), "{}", f.summary);
    let detected = finding(&j, Code::PoolerDetected);
    assert!(detected.evidence.iter().any(|e| e.key == "source_file"));
    // Without a certificate the same words mean none was sent.
    let j = World::healthy()
        .tls(|t| {
            t.startup = Some(pgpool_error(
                "CERT authentication failed",
                "no valid certificate presented",
            ))
        })
        .judge();
    assert!(codes(&j).contains(&Code::ClientCertMissing));
}

#[test]
fn a_san_that_names_the_user_passes_pgbouncer_and_not_postgresql() {
    let mut spec = LeafSpec::client("bob");
    spec.dns = vec!["alice".into()];
    let leaf = pki().ca.issue(&spec);
    let mut world = with(World::healthy(), client_sent(&leaf)).tls(|t| {
        t.startup = Some(StartupOutcome::Session {
            method: "trust".into(),
            server_version: Some("15.18".into()),
            server_ssl: None,
            channel_binding_used: false,
            query: None,
            flood: None,
            pooler_version: None,
        })
    });
    world.plain = Some(plain_with(pgbouncer_error("SSL required")));
    let j = world.judge();
    let f = finding(&j, Code::PoolerCertMatchDiffers);
    assert!(f.summary.contains("\"bob\""), "{}", f.summary);
    // And a CN that names the user matches for PgBouncer even beside a SAN.
    let mut spec = LeafSpec::client("alice");
    spec.dns = vec!["alice.clients.example.com".into()];
    let leaf = pki().ca.issue(&spec);
    let j = with(World::healthy(), client_sent(&leaf))
        .tls(|t| t.startup = Some(pgbouncer_error("certificate authentication failed")))
        .judge();
    let f = finding(&j, Code::PoolerCertAuthFailed);
    assert!(f.evidence.iter().any(|e| e.key == "cause"), "{f:#?}");
}

#[test]
fn the_shape_alone_names_no_pooler() {
    // pgcat, Odyssey and Supavisor write PgBouncer's fields too; only its words say PgBouncer.
    let j = World::healthy()
        .tls(|t| t.startup = Some(pgbouncer_error("pool exhausted for user alice")))
        .judge();
    let f = finding(&j, Code::PoolerDetected);
    assert!(f.summary.contains("intermediary"), "{}", f.summary);
    assert!(!codes(&j).contains(&Code::PoolerCertAuthFailed));
}

#[test]
fn pgbouncer_login_rejected_names_both_hba_candidates_without_its_file() {
    let j = World::healthy()
        .tls(|t| t.startup = Some(pgbouncer_error("login rejected")))
        .judge();
    let f = finding(&j, Code::HbaReject);
    assert_eq!(
        f.evidence.iter().filter(|e| e.key == "candidate").count(),
        2
    );
    assert!(f.summary.contains("auth_hba_file"), "{}", f.summary);
}

#[test]
fn an_old_backend_under_a_new_connection_is_a_pooled_server_connection() {
    let session = |age: i64| StartupOutcome::Session {
        method: "trust".into(),
        server_version: Some("15.18".into()),
        server_ssl: Some(ServerSslView {
            ssl: true,
            version: Some("TLSv1.3".into()),
            backend_age_secs: Some(age),
            probe_secs: Some(0),
            ..Default::default()
        }),
        channel_binding_used: false,
        query: None,
        flood: None,
        pooler_version: None,
    };
    let j = World::healthy()
        .tls(|t| t.startup = Some(session(600)))
        .judge();
    let f = finding(&j, Code::PoolerDetected);
    assert!(f.evidence.iter().any(|e| e.key == "server_view"));
    // A backend as young as the connection is PostgreSQL's own for it.
    let j = World::healthy()
        .tls(|t| t.startup = Some(session(1)))
        .judge();
    assert!(!codes(&j).contains(&Code::PoolerDetected));
}

#[test]
fn an_intermediary_is_named_by_its_answer_to_show_pool_version() {
    // The server's view says ssl = false on a TLS connection: an intermediary, asked.
    let session = |answer| StartupOutcome::Session {
        method: "trust".into(),
        server_version: Some("15.18".into()),
        server_ssl: Some(ServerSslView::default()),
        channel_binding_used: false,
        query: None,
        flood: None,
        pooler_version: Some(answer),
    };
    let j = World::healthy()
        .tls(|t| {
            t.startup = Some(session(crate::observe::PoolerVersion::Answered(
                "4.3.5 (tamahomeboshi)".into(),
            )))
        })
        .judge();
    let f = finding(&j, Code::PoolerDetected);
    assert!(f.summary.contains("pgpool-II"), "{}", f.summary);
    assert!(f.evidence.iter().any(|e| e.key == "pool_version"));
    // PostgreSQL's refusal, passed on: still unknown, and said so.
    let refusal = ErrorFields {
        severity: "ERROR".into(),
        code: "42704".into(),
        message: "unrecognized configuration parameter \"pool_version\"".into(),
        file: Some("guc.c".into()),
        tags: "SVCMFLR".into(),
        ..Default::default()
    };
    let j = World::healthy()
        .tls(|t| {
            t.startup = Some(session(crate::observe::PoolerVersion::Refused(Box::new(
                refusal.clone(),
            ))))
        })
        .judge();
    let f = finding(&j, Code::PoolerDetected);
    assert!(
        f.summary.contains("unknown") || f.summary.contains("intermediary"),
        "{}",
        f.summary
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.key == "pool_version" && format!("{:?}", e.value).contains("not pgpool-II")));
}

#[test]
fn pgpool_that_cannot_reach_or_log_in_to_its_backend_is_the_second_hop() {
    let j = World::healthy()
        .tls(|t| {
            t.startup = Some(pgpool_error(
                "backend authentication failed",
                "backend response with kind 'E' when expecting 'R'",
                Some(""),
            ))
        })
        .judge();
    let f = finding(&j, Code::PoolerServerLoginFailed);
    assert!(f.summary.contains("pgpool-II"), "{}", f.summary);
    assert!(f.evidence.iter().any(|e| e.key == "libpq_shows"), "{f:#?}");
    let j = World::healthy()
        .tls(|t| {
            t.startup = Some(pgpool_error(
                "failed to create a backend 0 connection",
                "not executing failover because failover_on_backend_error is off",
                None,
            ))
        })
        .judge();
    let f = finding(&j, Code::PoolerServerLoginFailed);
    assert!(f.summary.contains("could not connect"), "{}", f.summary);
    assert!(!f.evidence.iter().any(|e| e.key == "libpq_shows"));
}
