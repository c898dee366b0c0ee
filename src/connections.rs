//! The connection strategy: which connections libpq would make to one host at the
//! requested sslmode (at most two, or three when direct TLS falls back to asking), made
//! through the probe. The password decision is the gate's, a trait the judgement
//! implements, so this layer never imports `eval`.

use crate::client_cert::ClientIdentity;
use crate::observe::{HostObservation, PasswordGate, PasswordPermit, SslReply, TlsFailure};
use crate::plan::{Endpoint, Plan};
use crate::probe::{self, Deadlines, StartupParams};
use crate::sslmode::SslMode;

/// Makes the connections libpq at `plan.sslmode` would make to one host, and records what
/// each saw. Whether a connection may carry the password is the gate's decision.
pub fn observe_host(
    plan: &Plan,
    endpoint: &Endpoint,
    params: &StartupParams,
    identity: &ClientIdentity,
    deadlines: Deadlines,
    gate: &dyn PasswordGate,
    only_requested: bool,
) -> HostObservation {
    let requested = plan.sslmode;
    let mut connections = 0;
    let mut ssl_request_probe = None;
    let (tls, plain) =
        if plan.negotiation == crate::plan::Negotiation::Direct && !endpoint.is_unix_socket() {
            // Direct TLS (libpq 17): the ClientHello goes out at once with ALPN "postgresql".
            // The weaker sslmodes are refused by libpq itself, so no plaintext attempt is needed.
            connections += 1;
            let permit_for = |chain: &[Vec<u8>]| gate.tls_permit(requested, chain);
            let direct = probe::tls_attempt(
                endpoint,
                deadlines,
                params,
                identity,
                plan.tls_options(),
                crate::plan::Negotiation::Direct,
                &permit_for,
                PasswordPermit::Withhold,
            );
            let eof_before_certificate = direct.connect_error.is_none()
                && direct.chain.is_empty()
                && matches!(
                    direct.handshake,
                    Some(Err(TlsFailure::Eof | TlsFailure::Reset(_)))
                );
            if eof_before_certificate && !only_requested {
                // A PostgreSQL 16 or older server (or an SSLRequest-only proxy) reads the
                // ClientHello as a bad startup packet and hangs up. Ask it the old way.
                connections += 1;
                ssl_request_probe = Some(probe::tls_attempt(
                    endpoint,
                    deadlines,
                    params,
                    identity,
                    plan.tls_options(),
                    crate::plan::Negotiation::Postgres,
                    &|_: &[Vec<u8>]| PasswordPermit::Withhold,
                    PasswordPermit::Withhold,
                ));
            }
            (Some(direct), None)
        } else if endpoint.is_unix_socket() {
            // libpq never negotiates TLS on a Unix socket: every sslmode uses this connection.
            connections += 1;
            (
                None,
                Some(probe::plain_attempt(
                    endpoint,
                    deadlines,
                    params,
                    PasswordPermit::Send,
                )),
            )
        } else if requested <= SslMode::Allow {
            // disable and allow start in plaintext.
            connections += 1;
            let plain = probe::plain_attempt(endpoint, deadlines, params, PasswordPermit::Send);
            let tls_used = requested == SslMode::Allow && plain.ended_with_server_error();
            // --check: the TLS connection only where libpq makes it (allow, after a refusal).
            let tls = if plain.connect_error.is_some() || (only_requested && !tls_used) {
                None
            } else {
                connections += 1;
                let permit_for = |chain: &[Vec<u8>]| {
                    if tls_used {
                        gate.tls_permit(requested, chain)
                    } else {
                        PasswordPermit::Withhold
                    }
                };
                Some(probe::tls_attempt(
                    endpoint,
                    deadlines,
                    params,
                    identity,
                    plan.tls_options(),
                    plan.negotiation,
                    &permit_for,
                    PasswordPermit::Withhold,
                ))
            };
            (tls, Some(plain))
        } else {
            connections += 1;
            let permit_for = |chain: &[Vec<u8>]| gate.tls_permit(requested, chain);
            let after_refusal = if requested == SslMode::Prefer {
                PasswordPermit::Send
            } else {
                PasswordPermit::Withhold
            };
            let tls = probe::tls_attempt(
                endpoint,
                deadlines,
                params,
                identity,
                plan.tls_options(),
                plan.negotiation,
                &permit_for,
                after_refusal,
            );
            let falls_back = requested == SslMode::Prefer && gate.prefer_falls_back(&tls);
            // --check: the plaintext connection only where libpq makes it (prefer's fallback).
            let needs_plain = tls.connect_error.is_none()
                && tls.plaintext_after_refusal.is_none()
                && matches!(tls.reply, None | Some(SslReply::Accepted))
                && (!only_requested || falls_back);
            let plain = if needs_plain {
                connections += 1;
                let permit = if falls_back {
                    PasswordPermit::Send
                } else {
                    PasswordPermit::Withhold
                };
                Some(probe::plain_attempt(endpoint, deadlines, params, permit))
            } else {
                None
            };
            (Some(tls), plain)
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
