//! The connection strategy: which connections libpq would make to one host at the
//! requested sslmode (at most two, or three when direct TLS falls back to asking), made
//! through the probe. The full diagnosis makes the TLS and the plaintext connection at the
//! same time; the password waits on each until the verdict that permits it is known. The
//! password decision is the gate's, a trait the judgement implements, so this layer never
//! imports `eval`.

use crate::client_cert::ClientIdentity;
use crate::observe::{
    HostObservation, PasswordGate, PasswordPermit, PlainAttempt, SslReply, TlsAttempt, TlsFailure,
};
use crate::plan::{Endpoint, Negotiation, Plan};
use crate::probe::{self, Deadlines, Permit, StartupParams, TlsPermits};
use crate::sslmode::SslMode;

/// What every connection to one host shares.
pub struct Host<'a> {
    pub plan: &'a Plan,
    pub endpoint: &'a Endpoint,
    pub params: &'a StartupParams<'a>,
    pub identity: &'a ClientIdentity,
    pub deadlines: Deadlines,
}

impl Host<'_> {
    async fn tls(&self, negotiation: Negotiation, permits: TlsPermits<'_>) -> TlsAttempt {
        probe::tls_attempt(
            self.endpoint,
            self.deadlines,
            self.params,
            self.identity,
            self.plan.tls_options(),
            negotiation,
            permits,
        )
        .await
    }

    async fn plain(&self, permit: Permit) -> PlainAttempt {
        probe::plain_attempt(self.endpoint, self.deadlines, self.params, permit).await
    }
}

fn send(permit: bool) -> PasswordPermit {
    if permit {
        PasswordPermit::Send
    } else {
        PasswordPermit::Withhold
    }
}

/// Makes the connections libpq at `plan.sslmode` would make to one host (with
/// `only_requested`, only those), and records what each saw.
pub async fn observe_host(
    host: &Host<'_>,
    gate: &dyn PasswordGate,
    only_requested: bool,
) -> HostObservation {
    let requested = host.plan.sslmode;
    let endpoint = host.endpoint;
    let mut connections = 0;
    let mut ssl_request_probe = None;
    let never = |_: &[Vec<u8>]| PasswordPermit::Withhold;
    let at_requested = |chain: &[Vec<u8>]| gate.tls_permit(requested, chain);
    let (tls, plain) = if host.plan.negotiation == Negotiation::Direct && !endpoint.is_unix_socket()
    {
        // Direct TLS (libpq 17): the ClientHello goes out at once with ALPN "postgresql".
        // The weaker sslmodes are refused by libpq itself, so no plaintext attempt is needed.
        connections += 1;
        let direct = host
            .tls(
                Negotiation::Direct,
                TlsPermits {
                    permit_for: &at_requested,
                    hold: Permit::Now(PasswordPermit::Send),
                    after_refusal: PasswordPermit::Withhold,
                    negotiated: None,
                },
            )
            .await;
        let not_direct_tls = direct.connect_error.is_none()
            && direct.chain.is_empty()
            && matches!(
                direct.handshake,
                Some(Err(TlsFailure::Eof
                    | TlsFailure::Reset(_)
                    | TlsFailure::PlaintextReply { .. }))
            );
        if not_direct_tls && !only_requested {
            // A PostgreSQL 16 or older server reads the ClientHello as a bad startup packet
            // and hangs up; a pooler answers it in plaintext. Ask it the old way.
            connections += 1;
            ssl_request_probe = Some(
                host.tls(
                    Negotiation::Postgres,
                    TlsPermits {
                        permit_for: &never,
                        hold: Permit::Now(PasswordPermit::Withhold),
                        after_refusal: PasswordPermit::Withhold,
                        negotiated: None,
                    },
                )
                .await,
            );
        }
        (Some(direct), None)
    } else if endpoint.is_unix_socket() {
        // libpq never negotiates TLS on a Unix socket: every sslmode uses this connection.
        connections += 1;
        (
            None,
            Some(host.plain(Permit::Now(PasswordPermit::Send)).await),
        )
    } else if requested <= SslMode::Allow {
        // disable and allow start in plaintext; allow uses TLS after a refusal.
        let tls_used =
            |plain: &PlainAttempt| requested == SslMode::Allow && plain.ended_with_server_error();
        if only_requested {
            // --check: the TLS connection only where libpq makes it, after the refusal.
            connections += 1;
            let plain = host.plain(Permit::Now(PasswordPermit::Send)).await;
            let tls = if plain.connect_error.is_none() && tls_used(&plain) {
                connections += 1;
                Some(
                    host.tls(
                        host.plan.negotiation,
                        TlsPermits {
                            permit_for: &at_requested,
                            hold: Permit::Now(PasswordPermit::Send),
                            after_refusal: PasswordPermit::Withhold,
                            negotiated: None,
                        },
                    )
                    .await,
                )
            } else {
                None
            };
            (tls, Some(plain))
        } else {
            // Both at once: the TLS connection may send the password only once the
            // plaintext one was refused (what makes allow use TLS).
            let (tell_tls, hold) = probe::permit_channel();
            let plain = async {
                let plain = host.plain(Permit::Now(PasswordPermit::Send)).await;
                let _ = tell_tls.send(send(tls_used(&plain)));
                plain
            };
            let tls = host.tls(
                host.plan.negotiation,
                TlsPermits {
                    permit_for: &at_requested,
                    hold,
                    after_refusal: PasswordPermit::Withhold,
                    negotiated: None,
                },
            );
            let (plain, tls) = tokio::join!(plain, tls);
            connections += 1;
            // What sequential libpq-like probing would have seen: no TLS attempt to a host
            // that took no connection.
            let tls = if plain.connect_error.is_some() {
                None
            } else {
                connections += 1;
                Some(tls)
            };
            (tls, Some(plain))
        }
    } else {
        let after_refusal = send(requested == SslMode::Prefer);
        let tls_permits = |hold, negotiated| TlsPermits {
            permit_for: &at_requested,
            hold,
            after_refusal,
            negotiated,
        };
        let falls_back =
            |tls: &TlsAttempt| requested == SslMode::Prefer && gate.prefer_falls_back(tls);
        connections += 1;
        if only_requested {
            // --check: the plaintext connection only where libpq makes it (prefer's fallback,
            // after a handshake; a refusal already continued in plaintext).
            let tls = host
                .tls(
                    host.plan.negotiation,
                    tls_permits(Permit::Now(PasswordPermit::Send), None),
                )
                .await;
            let handshake_reached = tls.reply == Some(SslReply::Accepted);
            let plain = if handshake_reached && falls_back(&tls) {
                connections += 1;
                Some(host.plain(Permit::Now(PasswordPermit::Send)).await)
            } else {
                None
            };
            (Some(tls), plain)
        } else {
            // Both at once, once the server accepted the SSLRequest (the plaintext connection
            // tells what the TLS one cannot only then). It may send the password only if
            // prefer falls back to it, which the TLS attempt decides.
            let (tell_negotiated, negotiated) = tokio::sync::oneshot::channel();
            let (tell_plain, plain_permit) = probe::permit_channel();
            let tls = async {
                let tls = host
                    .tls(
                        host.plan.negotiation,
                        tls_permits(Permit::Now(PasswordPermit::Send), Some(tell_negotiated)),
                    )
                    .await;
                let _ = tell_plain.send(send(falls_back(&tls)));
                tls
            };
            let plain = async {
                match negotiated.await {
                    Ok(true) => Some(host.plain(plain_permit).await),
                    _ => None,
                }
            };
            let (tls, plain) = tokio::join!(tls, plain);
            connections += u32::from(plain.is_some());
            (Some(tls), plain)
        }
    };
    // A follow-up connection that recovered a TLS 1.3 alert counts too.
    connections += tls
        .iter()
        .chain(ssl_request_probe.iter())
        .map(|t| t.follow_ups)
        .sum::<u32>();
    HostObservation {
        endpoint: endpoint.clone(),
        tls,
        plain,
        ssl_request_probe,
        connections,
    }
}
