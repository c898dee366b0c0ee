//! All network I/O, one module per step: the link (resolution, connect, deadlines), the
//! SSLRequest negotiation, the TLS handshake, and the startup with authentication. Every
//! step has a deadline; the probe records what it saw and judges nothing (that is `eval`).
//! It runs on tokio, so the attempts of one diagnosis and the targets of a fleet overlap.

mod link;
mod negotiation;
mod startup;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::client_cert::ClientIdentity;
use crate::observe::{
    PasswordPermit, PlainAttempt, SslReply, StartupOutcome, TlsAttempt, TlsFailure,
};
use crate::plan::{ChannelBindingMode, Endpoint, Negotiation, Secret, TlsOptions, TlsVersion};
use crate::wire;

pub use link::{connect, Deadlines};
pub use startup::{startup_against, QueryLimits, MAX_STARTUP_CHATTER};
pub use tls::{alert_of, provider, MAX_CHAIN, PROVIDER_NAME};

/// When a connection may carry the password: known now, or once another connection of the
/// same diagnosis has ended (the attempts run concurrently; the startup waits for the
/// decision only when the server asks for a password).
pub enum Permit {
    Now(PasswordPermit),
    Later(tokio::sync::oneshot::Receiver<PasswordPermit>),
}

impl Permit {
    /// The decision; a decision that never comes (its connection dropped) withholds.
    pub async fn decided(self) -> PasswordPermit {
        match self {
            Permit::Now(p) => p,
            Permit::Later(rx) => rx.await.unwrap_or(PasswordPermit::Withhold),
        }
    }
}

/// Sends the decision to the connection waiting for it (if it still waits).
pub fn permit_channel() -> (tokio::sync::oneshot::Sender<PasswordPermit>, Permit) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (tx, Permit::Later(rx))
}

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
    /// Ask `SHOW pool_version` on a TLS session whose server view is an intermediary's (a
    /// full diagnosis; never --check, whose promise is no ERROR in a server's log).
    pub ask_pooler_version: bool,
}

/// A plaintext connection: StartupMessage straight away, as sslmode=disable does.
pub async fn plain_attempt(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams<'_>,
    permit: Permit,
) -> PlainAttempt {
    let mut out = PlainAttempt::default();
    match connect(endpoint, deadlines).await {
        Err(e) => out.connect_error = Some(e),
        Ok((mut link, addr)) => {
            out.addr = addr;
            out.local_addr = link.local_addr();
            link.begin_step();
            out.startup =
                Some(startup::startup(&mut link, params, permit.decided(), None, None).await);
        }
    }
    out
}

/// The password decision for a TLS connection once its chain is known.
pub type PermitFor<'a> = &'a (dyn Fn(&[Vec<u8>]) -> PasswordPermit + Sync);

/// What decides where the password may go on a TLS attempt.
pub struct TlsPermits<'a> {
    /// On the TLS session, once the chain is known.
    pub permit_for: PermitFor<'a>,
    /// Besides `permit_for`: what another connection must first show (sslmode=allow sends
    /// the password over TLS only after the plaintext session was refused).
    pub hold: Permit,
    /// On the same connection after the server refused TLS ('N'), as prefer continues.
    pub after_refusal: PasswordPermit,
    /// Told whether the server answered the SSLRequest with 'S' (dropped unsent when the
    /// connection failed first): a concurrent plaintext attempt starts only then, so a
    /// server that refuses TLS or cannot be reached gets no connection it does not need.
    pub negotiated: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// The TLS connection: SSLRequest (or direct TLS), one handshake recorded, then the startup.
pub async fn tls_attempt(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams<'_>,
    identity: &ClientIdentity,
    tls_options: TlsOptions,
    negotiation: Negotiation,
    permits: TlsPermits<'_>,
) -> TlsAttempt {
    let permit_for = permits.permit_for;
    let after_refusal = permits.after_refusal;
    // The StartupMessage goes out at once: a healthy server costs no wait. Only when the
    // connection then dies without a reason, with a client certificate sent under TLS 1.3,
    // can a refusal alert have been lost to the reset: a second connection waits for it.
    let mut first = tls_attempt_once(
        endpoint,
        deadlines,
        params,
        identity,
        tls_options,
        negotiation,
        TlsPermits {
            permit_for,
            hold: permits.hold,
            after_refusal,
            negotiated: permits.negotiated,
        },
        false,
    )
    .await;
    let died = matches!(
        first.startup,
        Some(StartupOutcome::Reset(_)) | Some(StartupOutcome::Closed)
    );
    let tls13 = matches!(&first.handshake, Some(Ok(f)) if f.version == TlsVersion::V1_3);
    if died && tls13 && first.client_cert_sent {
        // Only the alert is wanted from this one: it never carries the password.
        let second = tls_attempt_once(
            endpoint,
            deadlines,
            params,
            identity,
            tls_options,
            negotiation,
            TlsPermits {
                permit_for,
                hold: Permit::Now(PasswordPermit::Withhold),
                after_refusal: PasswordPermit::Withhold,
                negotiated: None,
            },
            true,
        )
        .await;
        first.follow_ups += 1;
        if let Some(alert @ StartupOutcome::Alert(_)) = second.startup {
            first.startup = Some(alert);
        }
    }
    first
}

#[allow(clippy::too_many_arguments)]
async fn tls_attempt_once(
    endpoint: &Endpoint,
    deadlines: Deadlines,
    params: &StartupParams<'_>,
    identity: &ClientIdentity,
    tls_options: TlsOptions,
    negotiation: Negotiation,
    permits: TlsPermits<'_>,
    wait_for_alert: bool,
) -> TlsAttempt {
    let mut out = TlsAttempt::default();
    let started = std::time::Instant::now();
    let (mut link, addr) = match connect(endpoint, deadlines).await {
        Ok(x) => x,
        Err(e) => {
            out.connect_error = Some(e);
            return out;
        }
    };
    out.addr = addr;
    out.local_addr = link.local_addr();

    if negotiation == Negotiation::Postgres {
        let reply = negotiation::ssl_request(&mut link).await;
        let accepted = reply == SslReply::Accepted;
        if let Some(tell) = permits.negotiated {
            let _ = tell.send(accepted);
        }
        let refused = reply == SslReply::Refused;
        out.reply = Some(reply);
        if refused {
            link.begin_step();
            let permit = std::future::ready(permits.after_refusal);
            out.plaintext_after_refusal =
                Some(startup::startup(&mut link, params, permit, None, None).await);
            return out;
        }
        if !accepted {
            return out;
        }
    }

    out.offered_versions = tls::offered(tls_options.protocol)
        .into_iter()
        .map(|v| v.name().to_string())
        .collect();
    if out.offered_versions.is_empty() {
        let range = tls_options.protocol;
        out.handshake = Some(Err(TlsFailure::OnlyOldVersions {
            min: range.min.map(TlsVersion::name).unwrap_or("TLSv1").into(),
            max: range.max.map(TlsVersion::name).unwrap_or("TLSv1.1").into(),
        }));
        return out;
    }
    link.begin_step();
    let recorder = Arc::new(tls::Recorder::new(identity));
    let conn = match tls::client_session(&recorder, tls_options, endpoint, addr) {
        Ok(c) => c,
        Err(e) => {
            out.handshake = Some(Err(TlsFailure::Other(e)));
            return out;
        }
    };
    let mut tls = tls::TlsLink::new(conn, link);
    let handshake_result = match tls.handshake().await {
        Ok(()) => Ok(()),
        Err(_) if tls.not_tls().is_some() => {
            // Not TLS at all: a pooler that answers the ClientHello as a startup packet.
            let bytes = tls.not_tls().unwrap_or_default().to_vec();
            Err(TlsFailure::PlaintextReply {
                error: wire::plaintext_error(&bytes),
                bytes,
            })
        }
        Err(e) => {
            let mut failure = tls::classify_handshake_error(&e, tls.link.timed_out);
            if matches!(failure, TlsFailure::Reset(_) | TlsFailure::Eof) {
                // The server's alert may sit unread behind a failed write of our flight.
                if let Some(alert) = tls.pending_alert().await {
                    failure = TlsFailure::Alert(alert);
                }
            }
            Err(failure)
        }
    };
    out.chain = recorder.chain();
    out.client_ca_names = recorder.ca_names();
    out.client_cert_sent = recorder.cert_sent();
    out.client_key_unusable = recorder.key_error.clone();
    if let Err(failure) = handshake_result {
        out.handshake = Some(Err(failure));
        return out;
    }
    let facts = tls::facts(&tls.conn);
    let tls13 = facts.version == TlsVersion::V1_3;
    let facts_version = facts.version.name();
    out.handshake = Some(Ok(facts));
    // Under TLS 1.3 the server checks the client certificate after our Finished and answers
    // a refusal with an alert and a close. If the StartupMessage is already in flight, the
    // close becomes a reset that can destroy the alert before it is read. On the follow-up
    // connection (see `tls_attempt`), give the alert a few round trips to arrive first
    // (libpq does not wait; it only loses the precise cause).
    if wait_for_alert && out.client_cert_sent && tls13 {
        let wait = (tls.rtt() * 3).clamp(Duration::from_millis(20), Duration::from_millis(250));
        if let Some(alert) = tls.early_alert(wait).await {
            out.startup = Some(alert);
            return out;
        }
    }
    let decided = (permits.permit_for)(&out.chain);
    let hold = permits.hold;
    let permit = async move {
        match hold.decided().await {
            PasswordPermit::Send => decided,
            PasswordPermit::Withhold => PasswordPermit::Withhold,
        }
    };
    let end_point = out
        .chain
        .first()
        .map(|der| crate::x509::tls_server_end_point(der));
    tls.link.begin_step();
    let own = startup::OwnTls {
        version: facts_version,
        client_cert_sent: out.client_cert_sent,
        connected: started,
    };
    let mut outcome = startup::startup(&mut tls, params, permit, end_point, Some(own)).await;
    if matches!(outcome, StartupOutcome::Reset(_) | StartupOutcome::Closed) {
        if let Some(alert) = tls.pending_alert().await {
            outcome = StartupOutcome::Alert(alert);
        }
    }
    out.startup = Some(outcome);
    tls.close().await;
    out
}

/// Runs a future of the probe to its end on a runtime of its own: for callers outside the
/// engine (the demo, --admin before the run).
pub fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(future);
    // A resolver stuck in getaddrinfo must not hold the process at exit.
    runtime.shutdown_background();
    Ok(output)
}
