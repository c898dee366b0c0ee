//! All network I/O: TCP connect, the SSLRequest exchange, one observed TLS handshake, the
//! StartupMessage and authentication. Every step has a deadline; the probe records what it
//! saw and judges nothing (that is `eval`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::client_cert::ClientIdentity;
use crate::observe::{
    Alert, AuthStage, ConnectFailure, Flood, HandshakeFacts, PasswordPermit, PlainAttempt,
    QueryResult, ServerSslView, SslReply, StartupOutcome, TimeoutKind, TlsAttempt, TlsFailure,
};
use crate::plan::{
    ChannelBindingMode, Endpoint, Negotiation, ProtocolRange, Secret, TlsOptions, TlsVersion,
};
use crate::wire::{self, AuthRequest, BackendMessage};

/// The limits every network step runs under.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub overall: Instant,
    pub step: Option<Duration>,
}

/// A socket whose every read and write is bounded by the step and overall deadlines.
pub struct Link {
    sock: Sock,
    deadlines: Deadlines,
    step_deadline: Option<Instant>,
    pub timed_out: Option<TimeoutKind>,
    /// How long the TCP connect took: a round-trip estimate.
    rtt: Duration,
}

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Link {
    fn local_addr(&self) -> Option<SocketAddr> {
        match &self.sock {
            Sock::Tcp(s) => s.local_addr().ok(),
            Sock::Unix(_) => None,
        }
    }

    fn begin_step(&mut self) {
        self.step_deadline = self
            .deadlines
            .step
            .and_then(|d| Instant::now().checked_add(d));
    }

    fn deadline(&self) -> (Instant, TimeoutKind) {
        match self.step_deadline {
            Some(step) if step < self.deadlines.overall => (step, TimeoutKind::Step),
            _ => (self.deadlines.overall, TimeoutKind::Overall),
        }
    }

    fn arm(&mut self, write: bool) -> io::Result<()> {
        let (deadline, kind) = self.deadline();
        let now = Instant::now();
        if now >= deadline {
            self.timed_out = Some(kind);
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline reached"));
        }
        let left = Some((deadline - now).max(Duration::from_millis(1)));
        match (&self.sock, write) {
            (Sock::Tcp(s), false) => s.set_read_timeout(left),
            (Sock::Tcp(s), true) => s.set_write_timeout(left),
            (Sock::Unix(s), false) => s.set_read_timeout(left),
            (Sock::Unix(s), true) => s.set_write_timeout(left),
        }
    }

    fn note_timeout(&mut self, e: io::Error) -> io::Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            self.timed_out = Some(self.deadline().1);
            return io::Error::new(io::ErrorKind::TimedOut, "deadline reached");
        }
        e
    }

    /// Bytes already waiting after a reply, without waiting for more.
    fn pending_bytes(&mut self, max: usize) -> Vec<u8> {
        let Sock::Tcp(s) = &self.sock else {
            return Vec::new();
        };
        // What arrived with the 'S', without waiting: libpq too only looks at what its read
        // of the 'S' brought along, so a healthy server costs nothing here.
        if s.set_nonblocking(true).is_err() {
            return Vec::new();
        }
        let mut buf = vec![0u8; max];
        let n = s.peek(&mut buf).unwrap_or(0);
        let _ = s.set_nonblocking(false);
        buf.truncate(n);
        buf
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(false)?;
        let r = match &mut self.sock {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        };
        r.map_err(|e| self.note_timeout(e))
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(true)?;
        let r = match &mut self.sock {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        };
        r.map_err(|e| self.note_timeout(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How long the next network step may take, and which deadline that is.
fn step_limit(deadlines: Deadlines) -> (Duration, TimeoutKind) {
    let now = Instant::now();
    match deadlines.step {
        Some(step)
            if now
                .checked_add(step)
                .is_some_and(|end| end < deadlines.overall) =>
        {
            (step, TimeoutKind::Step)
        }
        _ => (
            deadlines.overall.saturating_duration_since(now),
            TimeoutKind::Overall,
        ),
    }
}

/// getaddrinfo under the deadline: it blocks for as long as the resolver is silent, so it
/// runs on its own thread, and the probe stops waiting when the step's time is up.
fn resolve_within(
    host: &str,
    port: u16,
    deadlines: Deadlines,
) -> Result<Vec<SocketAddr>, ConnectFailure> {
    let (limit, kind) = step_limit(deadlines);
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(ConnectFailure::Resolve {
            host: host.to_string(),
            reason: format!("could not start the resolver: {e}"),
        });
    }
    match rx.recv_timeout(limit) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(ConnectFailure::Resolve {
            host: host.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => Err(ConnectFailure::ResolveTimeout {
            host: host.to_string(),
            kind,
        }),
    }
}

/// Opens the connection libpq would open: each resolved address in turn, TCP_NODELAY set.
pub fn connect(
    endpoint: &Endpoint,
    deadlines: Deadlines,
) -> Result<(Link, Option<SocketAddr>), ConnectFailure> {
    if endpoint.is_unix_socket() {
        let path = endpoint.socket_path();
        return UnixStream::connect(&path)
            .map(|s| {
                let mut link = Link {
                    sock: Sock::Unix(s),
                    deadlines,
                    step_deadline: None,
                    timed_out: None,
                    rtt: Duration::ZERO,
                };
                link.begin_step();
                (link, None)
            })
            .map_err(|e| ConnectFailure::Socket {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
    }
    let addrs: Vec<SocketAddr> = match endpoint.hostaddr {
        Some(std::net::IpAddr::V6(ip)) if endpoint.scope_id != 0 => vec![SocketAddr::V6(
            std::net::SocketAddrV6::new(ip, endpoint.port, 0, endpoint.scope_id),
        )],
        Some(ip) => vec![SocketAddr::new(ip, endpoint.port)],
        None => resolve_within(&endpoint.host, endpoint.port, deadlines)?,
    };
    let mut last_error = String::from("no addresses");
    let mut timed_out = None;
    for addr in &addrs {
        let (limit, kind) = step_limit(deadlines);
        if limit.is_zero() {
            timed_out = Some(TimeoutKind::Overall);
            break;
        }
        let started = Instant::now();
        match TcpStream::connect_timeout(addr, limit) {
            Ok(stream) => {
                // libpq sets TCP_NODELAY: without it Nagle and delayed ACKs stall the startup.
                let _ = stream.set_nodelay(true);
                let mut link = Link {
                    sock: Sock::Tcp(stream),
                    deadlines,
                    step_deadline: None,
                    timed_out: None,
                    rtt: started.elapsed(),
                };
                link.begin_step();
                return Ok((link, Some(*addr)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                timed_out = Some(kind);
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    match timed_out {
        Some(kind) => Err(ConnectFailure::Timeout { kind, addrs }),
        None => Err(ConnectFailure::Refused {
            addrs,
            reason: last_error,
        }),
    }
}

/// PBKDF2 runs on the probe's thread, outside any socket deadline: a hostile server must not
/// be able to buy minutes of CPU with one number.
const MAX_SCRAM_ITERATIONS: u32 = 10_000_000;

/// A real server sends about fifteen ParameterStatus messages and a few notices at startup.
pub const MAX_STARTUP_CHATTER: usize = 1_000;

/// What the startup needs, apart from the socket.
pub struct StartupParams<'a> {
    pub user: &'a str,
    pub dbname: &'a str,
    pub application_name: &'a str,
    /// libpq's `options` (command-line options for the server), sent when set.
    pub options: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub allow_cleartext_on_plaintext: bool,
    pub channel_binding: ChannelBindingMode,
    /// A query to run once the session is established (the --admin connection).
    pub extra_query: Option<&'a str>,
}

/// A plaintext connection: StartupMessage straight away, as sslmode=disable does.
pub fn plain_attempt(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams,
    permit: PasswordPermit,
) -> PlainAttempt {
    let mut out = PlainAttempt::default();
    match connect(endpoint, deadlines) {
        Err(e) => out.connect_error = Some(e),
        Ok((mut link, addr)) => {
            out.addr = addr;
            out.local_addr = link.local_addr();
            out.local_addr = link.local_addr();
            link.begin_step();
            out.startup = Some(startup(&mut link, params, permit, None, false));
        }
    }
    out
}

/// The TLS connection: SSLRequest (or direct TLS), one handshake recorded, then the startup.
/// `permit_for` decides, once the chain is known, whether the password may be sent on it.
#[allow(clippy::too_many_arguments)]
pub fn tls_attempt(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams,
    identity: &ClientIdentity,
    tls_options: TlsOptions,
    negotiation: Negotiation,
    permit_for: &dyn Fn(&[Vec<u8>]) -> PasswordPermit,
    permit_after_refusal: PasswordPermit,
) -> TlsAttempt {
    let attempt = |wait_for_alert| {
        tls_attempt_once(
            endpoint,
            deadlines,
            params,
            identity,
            tls_options,
            negotiation,
            permit_for,
            permit_after_refusal,
            wait_for_alert,
        )
    };
    // The StartupMessage goes out at once: a healthy server costs no wait. Only when the
    // connection then dies without a reason, with a client certificate sent under TLS 1.3,
    // can a refusal alert have been lost to the reset: a second connection waits for it.
    let mut first = attempt(false);
    let died = matches!(
        first.startup,
        Some(StartupOutcome::Reset(_)) | Some(StartupOutcome::Closed)
    );
    let tls13 = matches!(&first.handshake, Some(Ok(f)) if f.version == TlsVersion::V1_3);
    if died && tls13 && first.client_cert_sent {
        let second = attempt(true);
        first.follow_ups += 1;
        if let Some(alert @ StartupOutcome::Alert(_)) = second.startup {
            first.startup = Some(alert);
        }
    }
    first
}

#[allow(clippy::too_many_arguments)]
fn tls_attempt_once(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams,
    identity: &ClientIdentity,
    tls_options: TlsOptions,
    negotiation: Negotiation,
    permit_for: &dyn Fn(&[Vec<u8>]) -> PasswordPermit,
    permit_after_refusal: PasswordPermit,
    wait_for_alert: bool,
) -> TlsAttempt {
    let mut out = TlsAttempt::default();
    let (mut link, addr) = match connect(endpoint, deadlines) {
        Ok(x) => x,
        Err(e) => {
            out.connect_error = Some(e);
            return out;
        }
    };
    out.addr = addr;
    out.local_addr = link.local_addr();

    if negotiation == Negotiation::Postgres {
        let reply = ssl_request(&mut link);
        let accepted = reply == SslReply::Accepted;
        let refused = reply == SslReply::Refused;
        out.reply = Some(reply);
        if refused {
            link.begin_step();
            out.plaintext_after_refusal = Some(startup(
                &mut link,
                params,
                permit_after_refusal,
                None,
                false,
            ));
            return out;
        }
        if !accepted {
            return out;
        }
    }

    let versions = offered_versions(tls_options.protocol);
    if versions.is_empty() {
        let range = tls_options.protocol;
        out.handshake = Some(Err(TlsFailure::OnlyOldVersions {
            min: range.min.map(TlsVersion::name).unwrap_or("TLSv1").into(),
            max: range.max.map(TlsVersion::name).unwrap_or("TLSv1.1").into(),
        }));
        return out;
    }
    link.begin_step();
    let recorder = Arc::new(Recorder::new(identity));
    let config = match client_config(&recorder, tls_options) {
        Ok(c) => c,
        Err(e) => {
            out.handshake = Some(Err(TlsFailure::Other(e)));
            return out;
        }
    };
    let server_name = server_name(endpoint, addr);
    let conn = match rustls::ClientConnection::new(config, server_name) {
        Ok(c) => c,
        Err(e) => {
            out.handshake = Some(Err(TlsFailure::Other(e.to_string())));
            return out;
        }
    };
    let mut tls = rustls::StreamOwned::new(conn, link);
    let mut handshake_result = Ok(());
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            let mut failure = classify_tls_io(&e, tls.sock.timed_out);
            if matches!(failure, TlsFailure::Reset(_) | TlsFailure::Eof) {
                // The server's alert may sit unread behind a failed write of our flight.
                if let Some(alert) = pending_alert(&mut tls) {
                    failure = TlsFailure::Alert(alert);
                }
            }
            handshake_result = Err(failure);
            break;
        }
    }
    out.chain = recorder.chain();
    out.client_ca_names = recorder.ca_names();
    out.client_cert_sent = recorder.cert_sent();
    out.client_key_unusable = recorder.key_error.clone();
    if let Err(failure) = handshake_result {
        out.handshake = Some(Err(failure));
        return out;
    }
    let facts = HandshakeFacts {
        // The doctor offers TLS 1.2 and 1.3 only (see `offered_versions`).
        version: match tls.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::V1_3,
            _ => TlsVersion::V1_2,
        },
        cipher_suite: tls
            .conn
            .negotiated_cipher_suite()
            .map(|s| suite_name(s.suite()))
            .unwrap_or_default(),
        key_exchange_group: tls
            .conn
            .negotiated_key_exchange_group()
            .map(|g| group_name(g.name())),
        alpn: tls
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    out.handshake = Some(Ok(facts));
    // Under TLS 1.3 the server checks the client certificate after our Finished and answers
    // a refusal with an alert and a close. If the StartupMessage is already in flight, the
    // close becomes a reset that can destroy the alert before it is read. On the follow-up
    // connection (see `tls_attempt`), give the alert a few round trips to arrive first
    // (libpq does not wait; it only loses the precise cause).
    if wait_for_alert
        && out.client_cert_sent
        && tls.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
    {
        let wait = (tls.sock.rtt * 3).clamp(Duration::from_millis(20), Duration::from_millis(250));
        if let Some(alert) = early_alert(&mut tls, wait) {
            out.startup = Some(alert);
            return out;
        }
    }
    let permit = permit_for(&out.chain);
    let end_point = out
        .chain
        .first()
        .map(|der| crate::x509::tls_server_end_point(der));
    tls.sock.begin_step();
    let mut outcome = startup(&mut tls, params, permit, end_point, true);
    if matches!(outcome, StartupOutcome::Reset(_) | StartupOutcome::Closed) {
        if let Some(alert) = pending_alert(&mut tls) {
            outcome = StartupOutcome::Alert(alert);
        }
    }
    out.startup = Some(outcome);
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    out
}

/// After a reset or EOF: reads whatever TLS records are still buffered and returns the
/// alert among them, if any.
fn pending_alert(tls: &mut rustls::StreamOwned<rustls::ClientConnection, Link>) -> Option<Alert> {
    let saved = tls.sock.step_deadline;
    tls.sock.step_deadline = Some(Instant::now() + Duration::from_millis(50));
    let mut found = None;
    for _ in 0..8 {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) | Err(_) => {}
            Ok(_) => {}
        }
        match tls.conn.process_new_packets() {
            Err(rustls::Error::AlertReceived(alert)) => {
                found = Some(alert_of(&alert));
                break;
            }
            Err(_) => break,
            Ok(_) => {}
        }
        if tls.sock.timed_out.is_some() {
            break;
        }
    }
    tls.sock.timed_out = None;
    tls.sock.step_deadline = saved;
    found
}

/// Reads for at most `wait`, expecting nothing; returns the outcome if the server spoke.
fn early_alert(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, Link>,
    wait: Duration,
) -> Option<StartupOutcome> {
    let saved = tls.sock.step_deadline;
    tls.sock.step_deadline = Some(Instant::now() + wait);
    let mut buf = [0u8; 1];
    let result = tls.read(&mut buf);
    let timed_out = tls.sock.timed_out.take();
    tls.sock.step_deadline = saved;
    match result {
        Err(_) if timed_out.is_some() => None,
        Ok(0) => Some(StartupOutcome::Closed),
        Ok(_) => Some(StartupOutcome::Protocol(
            "the server sent data before the startup message".into(),
        )),
        Err(e) => Some(failure_outcome(tls, ReadFailure::Io(e))),
    }
}

fn ssl_request(link: &mut Link) -> SslReply {
    if let Err(e) = link.write_all(&wire::ssl_request()) {
        return io_reply(&e, link.timed_out);
    }
    let mut byte = [0u8; 1];
    match link.read(&mut byte) {
        Ok(0) => return SslReply::Closed,
        Ok(_) => {}
        Err(e) => return io_reply(&e, link.timed_out),
    }
    let following = link.pending_bytes(4096);
    match byte[0] {
        b'S' if following.is_empty() => SslReply::Accepted,
        b'S' => {
            let mut all = vec![b'S'];
            all.extend_from_slice(&following);
            match wire::identify_foreign_peer(&all) {
                Some(peer) => SslReply::Foreign {
                    bytes: all,
                    peer: peer.into(),
                },
                None => SslReply::Injected { extra: following },
            }
        }
        b'N' => SslReply::Refused,
        b'E' => {
            // The fork-failure text follows, then the server closes; read what is there.
            let mut rest = following;
            let mut chunk = [0u8; 1024];
            while rest.len() < 64 * 1024 {
                match link.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
                if rest.contains(&0) && rest.len() > 5 && rest[0] != 0 {
                    break;
                }
            }
            SslReply::ServerError {
                text: wire::parse_pre_tls_error(&rest),
            }
        }
        other => {
            let mut all = vec![other];
            all.extend_from_slice(&following);
            match wire::identify_foreign_peer(&all) {
                Some(peer) => SslReply::Foreign {
                    bytes: all,
                    peer: peer.into(),
                },
                None => SslReply::Unexpected {
                    byte: other,
                    following,
                },
            }
        }
    }
}

fn io_reply(e: &io::Error, timed_out: Option<TimeoutKind>) -> SslReply {
    if let Some(kind) = timed_out {
        return SslReply::Timeout(kind);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => SslReply::Closed,
        _ => SslReply::Reset(e.to_string()),
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The IANA name of a cipher suite (`TLS13_AES_256_GCM_SHA384`), or its number.
fn suite_name(suite: rustls::CipherSuite) -> String {
    suite
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("0x{:04x}", u16::from(suite)))
}

/// The IANA name of a key-exchange group (`X25519`, `secp256r1`), or its number.
fn group_name(group: rustls::NamedGroup) -> String {
    group
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("0x{:04x}", u16::from(group)))
}

/// The alert as the observation records it.
pub fn alert_of(alert: &rustls::AlertDescription) -> Alert {
    Alert::from_code(u8::from(*alert))
}

fn classify_tls_io(e: &io::Error, timed_out: Option<TimeoutKind>) -> TlsFailure {
    if let Some(kind) = timed_out {
        return TlsFailure::Timeout(kind);
    }
    if let Some(err) = rustls_error(e) {
        return match err {
            rustls::Error::AlertReceived(alert) => TlsFailure::Alert(alert_of(alert)),
            rustls::Error::PeerIncompatible(why) => TlsFailure::Incompatible(format!("{why:?}")),
            rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::SignedKxWithWrongAlgorithm) => {
                TlsFailure::Unemulated(
                    "the server signed its TLS 1.2 key exchange with a scheme rustls does not allow there (an RSA-PSS key's rsa_pss_pss_*, which OpenSSL accepts)".into(),
                )
            }
            other => TlsFailure::Other(other.to_string()),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => TlsFailure::Eof,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            TlsFailure::Reset(e.to_string())
        }
        _ => TlsFailure::Other(e.to_string()),
    }
}

fn server_name(endpoint: &Endpoint, addr: Option<SocketAddr>) -> ServerName<'static> {
    if !endpoint.host.is_empty() {
        if let Ok(name) = ServerName::try_from(endpoint.host.clone()) {
            return name;
        }
    }
    let ip = endpoint
        .hostaddr
        .or(addr.map(|a| a.ip()))
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    ServerName::IpAddress(ip.into())
}

/// The name of the crypto provider, for the report.
pub const PROVIDER_NAME: &str = if cfg!(feature = "aws-lc-rs") {
    "rustls 0.23 with aws-lc-rs"
} else {
    "rustls 0.23 with ring"
};

/// The crypto provider: ring, for its start-up cost (see docs/performance.md), with P-256
/// first because PostgreSQL's default ssl_ecdh_curve would otherwise force a HelloRetryRequest.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .kx_groups
        .sort_by_key(|g| (g.name() != rustls::NamedGroup::secp256r1) as u8);
    Arc::new(provider)
}

/// The TLS versions offered: those of ssl_min/max_protocol_version that rustls speaks.
/// Empty when the range holds only TLS 1.0 and 1.1 (see `tls_attempt`).
fn offered_versions(range: ProtocolRange) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if range.allows(TlsVersion::V1_3) {
        versions.push(&rustls::version::TLS13);
    }
    if range.allows(TlsVersion::V1_2) {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

fn client_config(
    recorder: &Arc<Recorder>,
    options: TlsOptions,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = recorder.provider.clone();
    let sni = options.sni;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&offered_versions(options.protocol))
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(recorder.clone());
    // libpq 17 always offers ALPN "postgresql"; a PG17 server refuses any other protocol.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    config.enable_sni = sni;
    Ok(Arc::new(config))
}

/// The most certificates of a server chain the doctor keeps.
pub const MAX_CHAIN: usize = 100;

/// Records the server's chain and CertificateRequest, and presents the client certificate.
/// Accepts any chain (judged later, offline, by `eval`) but still verifies the handshake
/// signatures, so the recorded chain belongs to the peer that holds its key.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<Vec<u8>>>,
    ca_names: Mutex<Option<Vec<Vec<u8>>>>,
    key: Option<Arc<CertifiedKey>>,
    key_error: Option<String>,
    sent: Mutex<bool>,
}

impl Recorder {
    fn new(identity: &ClientIdentity) -> Self {
        let provider = provider();
        let (key, key_error) = match identity {
            ClientIdentity::Loaded(m) => {
                match provider.key_provider.load_private_key(m.key.clone_key()) {
                    Ok(signer) => (
                        Some(Arc::new(CertifiedKey::new(m.chain.clone(), signer))),
                        None,
                    ),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
            _ => (None, None),
        };
        Recorder {
            provider,
            chain: Mutex::new(Vec::new()),
            ca_names: Mutex::new(None),
            key,
            key_error,
            sent: Mutex::new(false),
        }
    }

    fn chain(&self) -> Vec<Vec<u8>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn ca_names(&self) -> Option<Vec<Vec<u8>>> {
        self.ca_names.lock().ok().and_then(|c| c.clone())
    }

    fn cert_sent(&self) -> bool {
        self.sent.lock().map(|s| *s).unwrap_or(false)
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.push(end_entity.to_vec());
            // OpenSSL's default verify depth is 100; nothing longer can verify anyway.
            chain.extend(intermediates.iter().take(MAX_CHAIN - 1).map(|c| c.to_vec()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::sigalgs::verify(
            crate::sigalgs::Version::Tls12,
            message,
            cert,
            dss.scheme,
            dss.signature(),
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::sigalgs::verify(
            crate::sigalgs::Version::Tls13,
            message,
            cert,
            dss.scheme,
            dss.signature(),
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::sigalgs::offered()
    }
}

impl ResolvesClientCert for Recorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if let Ok(mut names) = self.ca_names.lock() {
            *names = Some(root_hint_subjects.iter().map(|n| n.to_vec()).collect());
        }
        let key = self.key.clone()?;
        let usable = key.key.choose_scheme(sigschemes).is_some();
        if let Ok(mut sent) = self.sent.lock() {
            *sent = usable;
        }
        usable.then_some(key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Reads framed backend messages with a bounded buffer.
struct MessageReader {
    buf: Vec<u8>,
}

enum ReadFailure {
    Io(io::Error),
    Eof,
    Wire(wire::WireError),
}

impl MessageReader {
    fn next<S: Read>(&mut self, stream: &mut S) -> Result<BackendMessage, ReadFailure> {
        loop {
            match wire::split_message(&self.buf) {
                Err(e) => return Err(ReadFailure::Wire(e)),
                Ok(Some(frame)) => {
                    let message =
                        wire::parse_backend(frame.tag, frame.body).map_err(ReadFailure::Wire)?;
                    let used = frame.len;
                    self.buf.drain(..used);
                    return Ok(message);
                }
                Ok(None) => {}
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) => return Err(ReadFailure::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(ReadFailure::Io(e)),
            }
        }
    }
}

trait TimedOut {
    fn timed_out(&self) -> Option<TimeoutKind>;
}

/// A peer in memory: reads come from `server`, writes are discarded.
struct Replay<R> {
    server: R,
}

impl<R: Read> Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.server.read(buf)
    }
}

impl<R> Write for Replay<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R> TimedOut for Replay<R> {
    fn timed_out(&self) -> Option<TimeoutKind> {
        None
    }
}

/// The startup exchange (authentication, then the pg_stat_ssl query as on TLS) against a
/// server whose bytes `server` yields, with no network: for the fuzz targets and tests that
/// need a hostile server's every possible answer, floods included.
pub fn startup_against<R: Read>(server: R, password: Option<&Secret>) -> StartupOutcome {
    let params = StartupParams {
        user: "alice",
        dbname: "app",
        application_name: "pgtls-doctor",
        options: None,
        password,
        allow_cleartext_on_plaintext: false,
        channel_binding: ChannelBindingMode::Prefer,
        extra_query: Some("SELECT 1"),
    };
    startup(
        &mut Replay { server },
        &params,
        PasswordPermit::Send,
        None,
        true,
    )
}

impl TimedOut for Link {
    fn timed_out(&self) -> Option<TimeoutKind> {
        self.timed_out
    }
}

impl TimedOut for rustls::StreamOwned<rustls::ClientConnection, Link> {
    fn timed_out(&self) -> Option<TimeoutKind> {
        self.sock.timed_out
    }
}

fn failure_outcome<S: TimedOut>(stream: &S, failure: ReadFailure) -> StartupOutcome {
    if let Some(kind) = stream.timed_out() {
        return StartupOutcome::Timeout(kind);
    }
    match failure {
        ReadFailure::Eof => StartupOutcome::Closed,
        ReadFailure::Wire(e) => StartupOutcome::Protocol(e.to_string()),
        ReadFailure::Io(e) => {
            if let Some(rustls::Error::AlertReceived(alert)) = rustls_error(&e) {
                return StartupOutcome::Alert(alert_of(alert));
            }
            match e.kind() {
                io::ErrorKind::UnexpectedEof => StartupOutcome::Closed,
                io::ErrorKind::TimedOut => StartupOutcome::Timeout(TimeoutKind::Overall),
                _ => StartupOutcome::Reset(e.to_string()),
            }
        }
    }
}

/// StartupMessage and the authentication exchange, up to ReadyForQuery or the first error.
#[allow(clippy::result_large_err)] // the Err of the write helper is the final outcome itself
fn startup<S: Read + Write + TimedOut>(
    stream: &mut S,
    params: &StartupParams,
    permit: PasswordPermit,
    tls_end_point: Option<Vec<u8>>,
    on_tls: bool,
) -> StartupOutcome {
    let mut startup_params = vec![
        ("user", params.user),
        ("database", params.dbname),
        ("application_name", params.application_name),
        ("client_encoding", "UTF8"),
    ];
    if let Some(options) = params.options.filter(|o| !o.is_empty()) {
        startup_params.push(("options", options));
    }
    let message = wire::startup_message(&startup_params);
    let write = |stream: &mut S, bytes: &[u8]| -> Result<(), StartupOutcome> {
        stream
            .write_all(bytes)
            .and_then(|_| stream.flush())
            .map_err(|e| failure_outcome(stream, ReadFailure::Io(e)))
    };
    if let Err(o) = write(stream, &message) {
        return o;
    }
    let mut reader = MessageReader { buf: Vec::new() };
    let mut stage = AuthStage::BeforeAuth;
    let mut method: Option<String> = None;
    let mut scram: Option<ScramSha256> = None;
    let mut binding_used = false;
    let mut server_version = None;
    let mut chatter = 0usize;
    loop {
        let msg = match reader.next(stream) {
            Ok(m) => m,
            Err(f) => return failure_outcome(stream, f),
        };
        if matches!(
            msg,
            BackendMessage::ParameterStatus { .. }
                | BackendMessage::Notice(_)
                | BackendMessage::Other(_)
        ) {
            chatter += 1;
            if chatter > MAX_STARTUP_CHATTER {
                return StartupOutcome::Flood(Flood {
                    what: "ParameterStatus, NoticeResponse or unknown messages before the session was ready".into(),
                    count: chatter,
                });
            }
        }
        match msg {
            BackendMessage::Error(fields) => {
                return StartupOutcome::ServerError {
                    fields,
                    stage,
                    method,
                }
            }
            BackendMessage::Authentication(request) => match request {
                AuthRequest::Ok => {
                    if params.channel_binding == ChannelBindingMode::Require && !binding_used {
                        return StartupOutcome::ChannelBinding(if on_tls {
                            "channel binding required, but server authenticated client without channel binding".into()
                        } else {
                            "channel binding required, but SSL not in use".into()
                        });
                    }
                    stage = AuthStage::AfterAuthOk;
                    method.get_or_insert_with(|| "trust".into());
                }
                AuthRequest::Sasl { mechanisms }
                    if !mechanisms.iter().any(|m| m.starts_with("SCRAM-SHA-256")) =>
                {
                    // libpq: none of the server's SASL authentication mechanisms are supported.
                    return StartupOutcome::UnsupportedAuth {
                        method: format!("SASL ({})", mechanisms.join(", ")),
                    };
                }
                AuthRequest::Cleartext | AuthRequest::Md5 { .. } | AuthRequest::Sasl { .. } => {
                    let name = request.method_name();
                    method = Some(name.clone());
                    let Some(password) = params.password else {
                        return StartupOutcome::PasswordNeeded { method: name };
                    };
                    let cleartext_refused = matches!(request, AuthRequest::Cleartext)
                        && !on_tls
                        && !params.allow_cleartext_on_plaintext;
                    if permit == PasswordPermit::Withhold || cleartext_refused {
                        return StartupOutcome::Withheld { method: name };
                    }
                    let reply = match &request {
                        AuthRequest::Cleartext | AuthRequest::Md5 { .. }
                            if params.channel_binding == ChannelBindingMode::Require =>
                        {
                            return StartupOutcome::ChannelBinding(
                                "channel binding required but not supported by server's authentication request".into(),
                            )
                        }
                        AuthRequest::Cleartext => {
                            wire::password_message(&password.bytes())
                        }
                        AuthRequest::Md5 { salt } => {
                            let hash = postgres_protocol::authentication::md5_hash(
                                params.user.as_bytes(),
                                &password.bytes(),
                                *salt,
                            );
                            wire::password_message(hash.as_bytes())
                        }
                        AuthRequest::Sasl { mechanisms } => {
                            let plus = "SCRAM-SHA-256-PLUS";
                            let plain = "SCRAM-SHA-256";
                            let offered_plus = mechanisms.iter().any(|m| m == plus);
                            let (mechanism, binding) = match (&tls_end_point, on_tls, params.channel_binding) {
                                (_, _, ChannelBindingMode::Disable) => (plain, ChannelBinding::unsupported()),
                                (Some(hash), true, _) if offered_plus => {
                                    binding_used = true;
                                    (plus, ChannelBinding::tls_server_end_point(hash.clone()))
                                }
                                (_, false, ChannelBindingMode::Require) => {
                                    return StartupOutcome::ChannelBinding(
                                        "channel binding required, but SSL not in use".into(),
                                    )
                                }
                                (_, true, ChannelBindingMode::Require) => {
                                    return StartupOutcome::ChannelBinding(
                                        "channel binding is required, but server did not offer an authentication method that supports channel binding".into(),
                                    )
                                }
                                (_, true, _) => (plain, ChannelBinding::unrequested()),
                                (_, false, _) => (plain, ChannelBinding::unsupported()),
                            };
                            if !mechanisms.iter().any(|m| m == mechanism) {
                                return StartupOutcome::UnsupportedAuth {
                                    method: format!("SASL ({})", mechanisms.join(", ")),
                                };
                            }
                            let s = ScramSha256::new(&password.bytes(), binding);
                            let bytes = wire::sasl_initial_response(mechanism, s.message());
                            scram = Some(s);
                            bytes
                        }
                        _ => unreachable!("matched above"),
                    };
                    if let Err(o) = write(stream, &reply) {
                        return o;
                    }
                    stage = AuthStage::AfterPassword;
                }
                AuthRequest::SaslContinue { data } => {
                    let Some(s) = scram.as_mut() else {
                        return StartupOutcome::Protocol("SASLContinue without SASL".into());
                    };
                    match wire::scram_iterations(&data) {
                        Some(i) if i > MAX_SCRAM_ITERATIONS => {
                            return StartupOutcome::Protocol(format!(
                                "the server demands {i} SCRAM iterations; the doctor stops at {MAX_SCRAM_ITERATIONS} to keep its deadline (PostgreSQL's default scram_iterations is 4096)"
                            ))
                        }
                        Some(_) => {}
                        // libpq: iterations must be a positive integer.
                        None => {
                            return StartupOutcome::Protocol(
                                "malformed SCRAM message (invalid iteration count)".into(),
                            )
                        }
                    }
                    if s.update(&data).is_err() {
                        return StartupOutcome::Protocol(
                            "invalid SCRAM server-first message".into(),
                        );
                    }
                    let reply = wire::sasl_response(s.message());
                    if let Err(o) = write(stream, &reply) {
                        return o;
                    }
                }
                AuthRequest::SaslFinal { data } => {
                    let Some(s) = scram.as_mut() else {
                        return StartupOutcome::Protocol("SASLFinal without SASL".into());
                    };
                    if s.finish(&data).is_err() {
                        return StartupOutcome::ServerProofInvalid;
                    }
                    stage = AuthStage::AfterSaslFinal;
                }
                AuthRequest::Other { .. } => {
                    return StartupOutcome::UnsupportedAuth {
                        method: request.method_name(),
                    }
                }
            },
            BackendMessage::ParameterStatus { name, value } if name == "server_version" => {
                server_version = Some(value);
            }
            BackendMessage::ReadyForQuery => {
                let (server_ssl, flood) = if on_tls {
                    query_ssl_view(stream, &mut reader)
                } else {
                    (None, None)
                };
                let query = params
                    .extra_query
                    .and_then(|sql| run_query(stream, &mut reader, sql, ADMIN_LIMITS));
                let _ = stream.write_all(&wire::terminate());
                let _ = stream.flush();
                return StartupOutcome::Session {
                    method: method.unwrap_or_else(|| "trust".into()),
                    server_version,
                    server_ssl,
                    channel_binding_used: binding_used,
                    query,
                    flood,
                };
            }
            _ => {}
        }
    }
}

impl QueryResult {
    /// A flood, when the answer went past what the query can produce.
    fn flood(&self, limits: QueryLimits) -> Option<Flood> {
        if self.rows_dropped > 0 {
            Some(Flood {
                what: format!(
                    "rows in answer to a query that returns at most {}",
                    limits.rows
                ),
                count: self.rows.len() + self.rows_dropped,
            })
        } else if self.errors_dropped > 0 {
            Some(Flood {
                what: "ErrorResponse messages in answer to one query".into(),
                count: self.errors.len() + self.errors_dropped,
            })
        } else if self.other_messages > MAX_STARTUP_CHATTER {
            Some(Flood {
                what: "notices or unknown messages in answer to one query".into(),
                count: self.other_messages,
            })
        } else {
            None
        }
    }
}

/// What one query may keep.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub rows: usize,
    pub bytes: usize,
    pub errors: usize,
}

/// pg_stat_ssl for the own backend: one row.
const SSL_VIEW_LIMITS: QueryLimits = QueryLimits {
    rows: 1,
    bytes: 64 << 10,
    errors: 4,
};

/// pg_hba_file_rules and pg_ident_file_mappings (--admin): a large file, not a flood.
const ADMIN_LIMITS: QueryLimits = QueryLimits {
    rows: 20_000,
    bytes: 16 << 20,
    errors: 16,
};

fn run_query<S: Read + Write>(
    stream: &mut S,
    reader: &mut MessageReader,
    sql: &str,
    limits: QueryLimits,
) -> Option<QueryResult> {
    stream.write_all(&wire::query(sql)).ok()?;
    stream.flush().ok()?;
    let mut result = QueryResult::default();
    let mut kept_bytes = 0usize;
    loop {
        match reader.next(stream).ok()? {
            BackendMessage::DataRow(cols) => {
                let size: usize = cols.iter().map(|c| c.as_ref().map_or(0, |v| v.len())).sum();
                if result.rows.len() < limits.rows && kept_bytes + size <= limits.bytes {
                    kept_bytes += size;
                    result.rows.push(cols);
                } else {
                    result.rows_dropped += 1;
                }
            }
            BackendMessage::Error(fields) if result.errors.len() < limits.errors => {
                result.errors.push(fields)
            }
            BackendMessage::Error(_) => result.errors_dropped += 1,
            BackendMessage::ReadyForQuery => return Some(result),
            BackendMessage::RowDescription | BackendMessage::CommandComplete => {}
            _ => {
                result.other_messages += 1;
                if result.other_messages > MAX_STARTUP_CHATTER * 10 {
                    return Some(result);
                }
            }
        }
    }
}

/// What the server saw of this TLS session (pg_stat_ssl for the own backend), and a flood
/// if the answer was one.
fn query_ssl_view<S: Read + Write>(
    stream: &mut S,
    reader: &mut MessageReader,
) -> (Option<ServerSslView>, Option<Flood>) {
    let sql = "SELECT ssl, version, cipher, client_dn, client_serial::text, issuer_dn \
               FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let Some(result) = run_query(stream, reader, sql, SSL_VIEW_LIMITS) else {
        return (None, None);
    };
    let flood = result.flood(SSL_VIEW_LIMITS);
    let Some(cols) = result.rows.first() else {
        return (None, flood);
    };
    let col = |i: usize| cols.get(i).cloned().flatten();
    let view = Some(ServerSslView {
        ssl: col(0).as_deref() == Some("t"),
        version: col(1),
        cipher: col(2),
        client_dn: col(3),
        client_serial: col(4),
        issuer_dn: col(5),
    });
    (view, flood)
}
