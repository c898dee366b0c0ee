//! The startup step: the StartupMessage, authentication (password, MD5, SCRAM with channel
//! binding), and the queries on the established session, every message length bounded.

use std::future::Future;
use std::io::{self, Read};

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::link::Link;
use super::tls::{io_outcome, TlsLink};
use super::StartupParams;
use crate::observe::{
    AuthStage, Flood, PasswordPermit, PoolerVersion, QueryResult, ServerSslView, StartupOutcome,
    TimeoutKind,
};
use crate::plan::{ChannelBindingMode, Secret};
use crate::wire::{self, AuthRequest, BackendMessage, ErrorFields};

/// PBKDF2 runs on the probe's thread, outside any socket deadline: a hostile server must not
/// be able to buy minutes of CPU with one number.
const MAX_SCRAM_ITERATIONS: u32 = 10_000_000;

/// A real server sends about fifteen ParameterStatus messages and a few notices at startup.
pub const MAX_STARTUP_CHATTER: usize = 1_000;

/// A byte stream to a server: plaintext, TLS, or bytes in memory.
pub(super) trait Transport {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Which deadline ended the last read or write, if one did.
    fn timed_out(&self) -> Option<TimeoutKind>;
}

impl Transport for Link {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Link::read(self, buf).await
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Link::write_all(self, bytes).await
    }
    fn timed_out(&self) -> Option<TimeoutKind> {
        self.timed_out
    }
}

impl Transport for TlsLink {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsLink::read(self, buf).await
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        TlsLink::write_all(self, bytes).await
    }
    fn timed_out(&self) -> Option<TimeoutKind> {
        self.link.timed_out
    }
}

/// A peer in memory: reads come from `server`, writes are discarded.
struct Replay<R> {
    server: R,
}

impl<R: Read> Transport for Replay<R> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.server.read(buf)
    }
    async fn write_all(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn timed_out(&self) -> Option<TimeoutKind> {
        None
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
    async fn next<S: Transport>(&mut self, stream: &mut S) -> Result<BackendMessage, ReadFailure> {
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
            self.fill(stream).await?;
        }
    }

    /// [`MessageReader::next`] while libpq awaits the answer to its StartupMessage, where an
    /// 'E' of impossible length is a pre-3.0 error. A v3 ErrorResponse already behind it is
    /// kept as its fields (pgpool-II sends one), the pre-3.0 text beside them.
    async fn next_in_startup<S: Transport>(
        &mut self,
        stream: &mut S,
    ) -> Result<BackendMessage, ReadFailure> {
        loop {
            if self.buf.is_empty() {
                self.fill(stream).await?;
            }
            match wire::split_pre_v3_error(&self.buf) {
                wire::PreV3Error::NotOne => return self.next(stream).await,
                wire::PreV3Error::Incomplete => {
                    // Read on until something new could end it (a NUL, or the limit), so a
                    // peer that trickles a byte at a time costs no rescan per byte.
                    let before = self.buf.len();
                    loop {
                        match self.fill(stream).await {
                            Err(ReadFailure::Eof) => {
                                return Err(ReadFailure::Wire(wire::WireError::Malformed {
                                    tag: b'E',
                                    what: "an 'E' whose length libpq cannot take as a v3 message, read as a pre-3.0 error, ended by the close before its NUL",
                                }))
                            }
                            other => other?,
                        }
                        if self.buf.len() < 5
                            || self.buf[before..].contains(&0)
                            || self.buf.len() > wire::MAX_ERRLEN as usize
                        {
                            break;
                        }
                    }
                }
                wire::PreV3Error::Complete { text, used } => {
                    self.buf.drain(..used);
                    let (mut fields, behind) = match wire::split_message(&self.buf) {
                        Ok(Some(frame)) if frame.tag == b'E' => {
                            (wire::parse_error_fields(frame.body), frame.len)
                        }
                        _ => (
                            ErrorFields {
                                severity: "FATAL".into(),
                                message: text.clone(),
                                ..Default::default()
                            },
                            0,
                        ),
                    };
                    self.buf.drain(..behind);
                    fields.pre_v3_text = Some(text);
                    return Ok(BackendMessage::Error(fields));
                }
            }
        }
    }

    async fn fill<S: Transport>(&mut self, stream: &mut S) -> Result<(), ReadFailure> {
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) => Err(ReadFailure::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(ReadFailure::Io(e)),
        }
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
        ask_pooler_version: true,
    };
    let mut replay = Replay { server };
    let future = startup(
        &mut replay,
        &params,
        std::future::ready(PasswordPermit::Send),
        None,
        Some(OwnTls {
            version: "TLSv1.3",
            client_cert_sent: true,
            connected: std::time::Instant::now(),
        }),
    );
    // Nothing in memory ever waits, so one poll finishes it; no runtime is needed.
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => {
            StartupOutcome::Protocol("the in-memory server waited (a probe defect)".into())
        }
    }
}

fn failure_outcome<S: Transport>(stream: &S, failure: ReadFailure) -> StartupOutcome {
    if let Some(kind) = stream.timed_out() {
        return StartupOutcome::Timeout(kind);
    }
    match failure {
        ReadFailure::Eof => StartupOutcome::Closed,
        ReadFailure::Wire(e) => StartupOutcome::Protocol(e.to_string()),
        ReadFailure::Io(e) => io_outcome(None, e),
    }
}

/// What a TLS connection itself did, to compare with the server's view of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct OwnTls {
    pub version: &'static str,
    pub client_cert_sent: bool,
    pub connected: std::time::Instant,
}

/// StartupMessage and the authentication exchange, up to ReadyForQuery or the first error.
/// `permit` is awaited only when the server asks for a password. `own_tls`: the session is
/// a TLS one, and what its connection did.
pub(super) async fn startup<S: Transport>(
    stream: &mut S,
    params: &StartupParams<'_>,
    permit: impl Future<Output = PasswordPermit>,
    tls_end_point: Option<Vec<u8>>,
    own_tls: Option<OwnTls>,
) -> StartupOutcome {
    let on_tls = own_tls.is_some();
    let mut permit = Some(permit);
    let mut decided = None;
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
    if let Err(e) = stream.write_all(&message).await {
        return failure_outcome(stream, ReadFailure::Io(e));
    }
    let mut reader = MessageReader { buf: Vec::new() };
    let mut stage = AuthStage::BeforeAuth;
    let mut method: Option<String> = None;
    let mut scram: Option<ScramSha256> = None;
    let mut binding_used = false;
    let mut server_version = None;
    let mut chatter = 0usize;
    loop {
        let msg = match reader.next_in_startup(stream).await {
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
                    let permit = match decided {
                        Some(p) => p,
                        None => {
                            let p = match permit.take() {
                                Some(future) => future.await,
                                None => PasswordPermit::Withhold,
                            };
                            decided = Some(p);
                            p
                        }
                    };
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
                    if let Err(e) = stream.write_all(&reply).await {
                        return failure_outcome(stream, ReadFailure::Io(e));
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
                    if let Err(e) = stream.write_all(&reply).await {
                        return failure_outcome(stream, ReadFailure::Io(e));
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
                // A session is one that answers its first query, as psql's `-c` needs: a
                // pooler may complete the login from its cache and then end the session
                // when it finds no server connection for the query.
                let (mut server_ssl, flood, ended) = if on_tls {
                    query_ssl_view(stream, &mut reader).await
                } else {
                    let answer =
                        run_query(stream, &mut reader, "SELECT 1", FIRST_QUERY_LIMITS).await;
                    (None, None, answer.and_then(|a| a.session_ended_by()))
                };
                if let Some(fields) = ended {
                    return StartupOutcome::ServerError {
                        fields,
                        stage: AuthStage::FirstQuery,
                        method,
                    };
                }
                let mut pooler_version = None;
                if let (Some(view), Some(own)) = (server_ssl.as_mut(), own_tls) {
                    view.probe_secs = Some(own.connected.elapsed().as_secs());
                    let foreign = !view
                        .contradictions(own.version, own.client_cert_sent)
                        .is_empty();
                    if foreign && params.ask_pooler_version {
                        pooler_version = ask_pooler_version(stream, &mut reader).await;
                    }
                }
                let query = match params.extra_query {
                    Some(sql) => run_query(stream, &mut reader, sql, ADMIN_LIMITS).await,
                    None => None,
                };
                let _ = stream.write_all(&wire::terminate()).await;
                return StartupOutcome::Session {
                    method: method.unwrap_or_else(|| "trust".into()),
                    server_version,
                    server_ssl,
                    channel_binding_used: binding_used,
                    query,
                    flood,
                    pooler_version,
                };
            }
            _ => {}
        }
    }
}

impl QueryResult {
    /// The FATAL error that ended the session in answer to the query, if one did.
    fn session_ended_by(&self) -> Option<ErrorFields> {
        self.errors
            .iter()
            .find(|e| e.severity == "FATAL" || e.severity == "PANIC")
            .cloned()
    }

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

/// `SELECT 1` on a plaintext session.
const FIRST_QUERY_LIMITS: QueryLimits = QueryLimits {
    rows: 1,
    bytes: 1 << 10,
    errors: 4,
};

/// pg_hba_file_rules and pg_ident_file_mappings (--admin): a large file, not a flood.
const ADMIN_LIMITS: QueryLimits = QueryLimits {
    rows: 20_000,
    bytes: 16 << 20,
    errors: 16,
};

async fn run_query<S: Transport>(
    stream: &mut S,
    reader: &mut MessageReader,
    sql: &str,
    limits: QueryLimits,
) -> Option<QueryResult> {
    stream.write_all(&wire::query(sql)).await.ok()?;
    let mut result = QueryResult::default();
    let mut kept_bytes = 0usize;
    loop {
        let message = match reader.next(stream).await {
            Ok(message) => message,
            // The errors that came before the end are the answer (a FATAL, then the close).
            Err(_) if !result.errors.is_empty() => return Some(result),
            Err(_) => return None,
        };
        match message {
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

/// pgpool-II answers `SHOW pool_version` itself; an intermediary that passes queries on gets
/// PostgreSQL's refusal (one ERROR line in that server's log, the price of asking).
async fn ask_pooler_version<S: Transport>(
    stream: &mut S,
    reader: &mut MessageReader,
) -> Option<PoolerVersion> {
    let answer = run_query(stream, reader, "SHOW pool_version", FIRST_QUERY_LIMITS).await?;
    match (answer.rows.first(), answer.errors.into_iter().next()) {
        (Some(row), _) => Some(PoolerVersion::Answered(
            row.first().cloned().flatten().unwrap_or_default(),
        )),
        (None, Some(error)) => Some(PoolerVersion::Refused(Box::new(error))),
        (None, None) => None,
    }
}

/// What the server saw of this TLS session (pg_stat_ssl for the own backend), and a flood
/// if the answer was one.
async fn query_ssl_view<S: Transport>(
    stream: &mut S,
    reader: &mut MessageReader,
) -> (Option<ServerSslView>, Option<Flood>, Option<ErrorFields>) {
    // The backend's age tells a fresh backend from a pooled server connection (a pooler
    // that served this login on a connection it already had). The function behind the
    // pg_stat_ssl and pg_stat_activity views (PostgreSQL 12 and later, like the view's
    // issuer_dn), asked for this one backend: on a fresh backend that costs a third of the
    // two views' planning (about 1.5 ms against 5 ms, measured with psql's \timing).
    let sql = "SELECT s.ssl, s.sslversion, s.sslcipher, s.ssl_client_dn, \
               s.ssl_client_serial::text, s.ssl_issuer_dn, \
               extract(epoch FROM now() - s.backend_start)::bigint::text \
               FROM pg_stat_get_activity(pg_backend_pid()) s";
    let Some(result) = run_query(stream, reader, sql, SSL_VIEW_LIMITS).await else {
        return (None, None, None);
    };
    let flood = result.flood(SSL_VIEW_LIMITS);
    // A flood of errors is a flood, whatever their severity.
    let ended = if flood.is_none() {
        result.session_ended_by()
    } else {
        None
    };
    let Some(cols) = result.rows.first() else {
        return (None, flood, ended);
    };
    let col = |i: usize| cols.get(i).cloned().flatten();
    let view = Some(ServerSslView {
        ssl: col(0).as_deref() == Some("t"),
        version: col(1),
        cipher: col(2),
        client_dn: col(3),
        client_serial: col(4),
        issuer_dn: col(5),
        backend_age_secs: col(6).and_then(|v| v.parse().ok()),
        probe_secs: None,
    });
    (view, flood, ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgpool-II's refusal: an empty pre-3.0 error, then its v3 ErrorResponse.
    #[test]
    fn a_pre_v3_error_keeps_the_error_behind_it() {
        let mut bytes = b"E\0".to_vec();
        let body = b"SERROR\0CXX000\0Mbackend authentication failed\0Fpool_auth.c\0\0";
        bytes.push(b'E');
        bytes.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        bytes.extend_from_slice(body);
        match startup_against(std::io::Cursor::new(bytes), None) {
            StartupOutcome::ServerError { fields, .. } => {
                assert_eq!(fields.message, "backend authentication failed");
                assert_eq!(fields.pre_v3_text.as_deref(), Some(""));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The in-memory exchange finishes in one poll, floods included.
    #[test]
    fn an_in_memory_server_is_answered_without_a_runtime() {
        // AuthenticationOk, then endless ParameterStatus messages.
        let mut bytes = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
        let status = [b'S', 0, 0, 0, 8, b'a', 0, b'b', 0];
        bytes.extend(status.iter().cycle().take(status.len() * 2_000));
        let outcome = startup_against(std::io::Cursor::new(bytes), None);
        assert!(matches!(outcome, StartupOutcome::Flood(_)), "{outcome:?}");
        // A server that says nothing more: closed, not a hang.
        let outcome = startup_against(std::io::Cursor::new(Vec::new()), None);
        assert!(matches!(outcome, StartupOutcome::Closed), "{outcome:?}");
    }
}
