//! The TLS step: one handshake driven by rustls over the deadline-bound link, with the
//! server's chain and CertificateRequest recorded, and the alerts a refusing server sends.
//! rustls is driven here rather than through tokio-rustls because the diagnosis needs the
//! connection's state after a failure (the alert still buffered behind a reset), which
//! tokio-rustls gives up with the stream.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::link::Link;
use crate::client_cert::ClientIdentity;
use crate::observe::{Alert, HandshakeFacts, StartupOutcome, TimeoutKind, TlsFailure};
use crate::plan::{Endpoint, ProtocolRange, TlsOptions, TlsVersion};

/// A TLS session over a link: rustls's state machine, fed by async reads and writes.
pub struct TlsLink {
    pub conn: rustls::ClientConnection,
    pub link: Link,
    /// The first bytes the server sent: when they are no TLS record, what they are instead
    /// (a pooler's plaintext ErrorResponse to a direct-TLS ClientHello) is the evidence.
    pub first_bytes: Vec<u8>,
}

/// How many of the server's first bytes are kept.
const FIRST_BYTES: usize = 512;

impl TlsLink {
    pub fn new(conn: rustls::ClientConnection, link: Link) -> TlsLink {
        TlsLink {
            conn,
            link,
            first_bytes: Vec::new(),
        }
    }

    /// The server's first bytes, when they cannot begin a TLS record (content types 20 to
    /// 24): it answered in something else.
    pub fn not_tls(&self) -> Option<&[u8]> {
        match self.first_bytes.first() {
            Some(20..=24) | None => None,
            Some(_) => Some(&self.first_bytes),
        }
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsLink {
    /// Sends every TLS record rustls has queued.
    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = Vec::new();
            self.conn.write_tls(&mut out)?;
            self.link.write_all(&out).await?;
        }
        Ok(())
    }

    /// One read from the socket, handed to rustls and processed. Ok(0) at end of stream.
    /// A record rustls refuses (an alert among them) is the error, after rustls's own alert
    /// in answer has been sent.
    async fn receive(&mut self) -> io::Result<usize> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = self.link.read(&mut buf).await?;
        if self.first_bytes.len() < FIRST_BYTES {
            let room = FIRST_BYTES - self.first_bytes.len();
            self.first_bytes.extend_from_slice(&buf[..n.min(room)]);
        }
        let mut rest = &buf[..n];
        loop {
            // An empty slice tells rustls the peer closed.
            self.conn.read_tls(&mut rest)?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush().await;
                return Err(tls_error(e));
            }
            if rest.is_empty() {
                return Ok(n);
            }
        }
    }

    /// Runs the handshake to its end, our last flight included.
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                self.flush().await?;
            } else if self.conn.wants_read() {
                if self.receive().await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tls handshake eof",
                    ));
                }
            } else {
                break;
            }
        }
        self.flush().await
    }

    /// Reads application data: Ok(0) after the server's close_notify, UnexpectedEof when
    /// it closed without one.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.flush().await?;
            self.receive().await?;
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(bytes)?;
        self.flush().await
    }

    /// Ends the session politely; the answer does not matter.
    pub async fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush().await;
    }

    /// After a reset or EOF: reads whatever TLS records are still buffered and returns the
    /// alert among them, if any.
    pub async fn pending_alert(&mut self) -> Option<Alert> {
        let saved = self.link.step_deadline;
        self.link.step_deadline = Some(Instant::now() + Duration::from_millis(50));
        let mut found = None;
        for _ in 0..8 {
            match self.receive().await {
                Err(e) => match rustls_error(&e) {
                    Some(rustls::Error::AlertReceived(alert)) => {
                        found = Some(alert_of(alert));
                        break;
                    }
                    Some(_) => break,
                    None => {}
                },
                Ok(0) => break,
                Ok(_) => {}
            }
            if self.link.timed_out.is_some() {
                break;
            }
        }
        self.link.timed_out = None;
        self.link.step_deadline = saved;
        found
    }

    /// Reads for at most `wait`, expecting nothing; returns the outcome if the server spoke.
    pub async fn early_alert(&mut self, wait: Duration) -> Option<StartupOutcome> {
        let saved = self.link.step_deadline;
        self.link.step_deadline = Some(Instant::now() + wait);
        let mut buf = [0u8; 1];
        let result = self.read(&mut buf).await;
        let timed_out = self.link.timed_out.take();
        self.link.step_deadline = saved;
        match result {
            Err(_) if timed_out.is_some() => None,
            Ok(0) => Some(StartupOutcome::Closed),
            Ok(_) => Some(StartupOutcome::Protocol(
                "the server sent data before the startup message".into(),
            )),
            Err(e) => Some(io_outcome(None, e)),
        }
    }

    /// A round-trip estimate: how long the TCP connect took.
    pub fn rtt(&self) -> Duration {
        self.link.rtt
    }
}

/// The outcome of a read or write that failed with `e`.
pub(super) fn io_outcome(timed_out: Option<TimeoutKind>, e: io::Error) -> StartupOutcome {
    if let Some(kind) = timed_out {
        return StartupOutcome::Timeout(kind);
    }
    if let Some(rustls::Error::AlertReceived(alert)) = rustls_error(&e) {
        return StartupOutcome::Alert(alert_of(alert));
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => StartupOutcome::Closed,
        io::ErrorKind::TimedOut => StartupOutcome::Timeout(TimeoutKind::Overall),
        _ => StartupOutcome::Reset(e.to_string()),
    }
}

/// Starts a TLS client session for `endpoint` with the recorder as verifier and resolver.
pub fn client_session(
    recorder: &Arc<Recorder>,
    options: TlsOptions,
    endpoint: &Endpoint,
    addr: Option<SocketAddr>,
) -> Result<rustls::ClientConnection, String> {
    let config = client_config(recorder, options)?;
    rustls::ClientConnection::new(config, server_name(endpoint, addr)).map_err(|e| e.to_string())
}

pub fn classify_handshake_error(e: &io::Error, timed_out: Option<TimeoutKind>) -> TlsFailure {
    classify_tls_io(e, timed_out)
}

/// What was negotiated, as the observation records it.
pub fn facts(conn: &rustls::ClientConnection) -> HandshakeFacts {
    HandshakeFacts {
        // The doctor offers TLS 1.2 and 1.3 only (see `offered`).
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::V1_3,
            _ => TlsVersion::V1_2,
        },
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| suite_name(s.suite()))
            .unwrap_or_default(),
        key_exchange_group: conn
            .negotiated_key_exchange_group()
            .map(|g| group_name(g.name())),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    }
}

pub(super) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
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

/// The TLS versions offered, newest first: those of ssl_min/max_protocol_version that
/// rustls speaks. Empty when the range holds only TLS 1.0 and 1.1 (see `tls_attempt`).
pub(super) fn offered(range: ProtocolRange) -> Vec<TlsVersion> {
    [TlsVersion::V1_3, TlsVersion::V1_2]
        .into_iter()
        .filter(|v| range.allows(*v))
        .collect()
}

/// [`offered`] as rustls's versions.
fn offered_versions(range: ProtocolRange) -> Vec<&'static rustls::SupportedProtocolVersion> {
    offered(range)
        .into_iter()
        .map(|v| match v {
            TlsVersion::V1_3 => &rustls::version::TLS13,
            _ => &rustls::version::TLS12,
        })
        .collect()
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
pub(super) struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<Vec<u8>>>,
    ca_names: Mutex<Option<Vec<Vec<u8>>>>,
    key: Option<Arc<CertifiedKey>>,
    pub(super) key_error: Option<String>,
    sent: Mutex<bool>,
}

impl Recorder {
    pub(super) fn new(identity: &ClientIdentity) -> Self {
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

    pub(super) fn chain(&self) -> Vec<Vec<u8>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub(super) fn ca_names(&self) -> Option<Vec<Vec<u8>>> {
        self.ca_names.lock().ok().and_then(|c| c.clone())
    }

    pub(super) fn cert_sent(&self) -> bool {
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
