//! Causes in the TLS handshake.

use crate::catalogue::Code;
use crate::eval::causes::network::*;
use crate::eval::client_cert::{self};
use crate::eval::model::*;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::observe::{Alert, TlsAttempt, TlsFailure};

pub(in crate::eval) fn handshake_problem(
    failure: &TlsFailure,
    tls: &TlsAttempt,
    input: &EvalInput,
) -> Problem {
    match failure {
        TlsFailure::Alert(alert @ Alert::ProtocolVersion) => {
            let offered = match tls.offered_versions.as_slice() {
                [] => "TLSv1.2 and TLSv1.3".to_string(),
                versions => versions.join(" and "),
            };
            let problem = Problem::new(
                Code::TlsVersionUnsupported,
                format!("the server refused every TLS version the client offers ({offered})"),
            )
            .with("alert", Value::name(alert.name()))
            .with("client_offers", offered);
            // The client's own range narrowed the offer: the server may take the other one.
            let problem = if tls.offered_versions.len() == 1 {
                problem.with("client_setting", "the connection's ssl_min_protocol_version / ssl_max_protocol_version leave the client one version; libpq offers TLSv1.2 and TLSv1.3 without them")
            } else {
                problem
            };
            problem.fix("check ssl_min_protocol_version / ssl_max_protocol_version in postgresql.conf")
        }
        TlsFailure::Incompatible(why) => Problem::new(
            Code::TlsVersionUnsupported,
            format!("no TLS version or cipher suite in common with the server: {why}"),
        )
        .fix("check ssl_min_protocol_version, ssl_max_protocol_version and ssl_ciphers in postgresql.conf"),
        TlsFailure::Alert(alert) if tls.client_cert_sent && alert.refuses_certificate() => {
            client_cert::refusal_problem(*alert, &input.local.client, tls, input.now, false)
        }
        TlsFailure::Alert(alert @ Alert::CertificateRequired) if !tls.client_cert_sent => {
            client_cert::demanded_problem(*alert, tls, &input.local.client)
        }
        TlsFailure::Alert(alert @ Alert::HandshakeFailure)
            if !tls.client_cert_sent && tls.client_ca_names.is_some() && !tls.chain.is_empty() =>
        {
            client_cert::demanded_problem(*alert, tls, &input.local.client)
        }
        TlsFailure::Alert(alert @ Alert::HandshakeFailure) if tls.chain.is_empty() => Problem::new(
            Code::TlsHandshakeFailed,
            "the server ended the TLS handshake with alert handshake_failure before sending its certificate",
        )
        .with("alert", Value::name(alert.name()))
        .with("likely_cause", "no cipher suite, key-exchange group or signature scheme in common (ssl_ciphers, ssl_ecdh_curve, or an unusual server key type)")
        .fix("check ssl_ciphers and ssl_ecdh_curve in postgresql.conf and the server key type (`openssl x509 -in server.crt -noout -text`)"),
        TlsFailure::Alert(alert) => Problem::new(
            Code::TlsHandshakeFailed,
            format!("the server ended the TLS handshake with alert {alert}"),
        )
        .with("alert", Value::name(alert.name()))
        .fix("the server log says why (\"could not accept SSL connection: ...\")"),
        TlsFailure::Eof => Problem::new(
            Code::TlsHandshakeFailed,
            "the server closed the connection during the TLS handshake",
        )
        .fix("the server log says why (\"could not accept SSL connection: ...\")"),
        TlsFailure::Reset(e) => Problem::new(
            Code::TlsHandshakeFailed,
            format!("the connection was reset during the TLS handshake: {e}"),
        ),
        TlsFailure::Timeout(kind) => Problem::new(
            Code::ConnectTimeout,
            format!("the TLS handshake did not finish within {}", timeout_name(*kind)),
        ),
        TlsFailure::Other(e) => Problem::new(Code::TlsHandshakeFailed, format!("TLS handshake failed: {e}")),
        TlsFailure::PlaintextReply { error, bytes } => {
            let said = match error {
                Some(e) => format!("a plaintext PostgreSQL ErrorResponse: \"{}\"", e.message),
                None => format!("{} bytes that are not TLS", bytes.len()),
            };
            Problem::new(
                Code::TlsHandshakeFailed,
                format!("the server answered the TLS ClientHello with {said} (libpq: SSL error: wrong version number)"),
            )
            .with("first_bytes", crate::eval::prose::hex_preview(bytes))
            .fix("the port does not speak TLS where the doctor started it; check that host and port name the PostgreSQL server or pooler meant")
        }
        TlsFailure::OnlyOldVersions { min, max } => Problem::new(
            Code::TlsVersionUnsupported,
            format!("SSL error: tlsv1 alert protocol version: libpq offers only {min} to {max} (ssl_max_protocol_version), which the server refuses"),
        )
        .with("ssl_min_protocol_version", min.clone())
        .with("ssl_max_protocol_version", max.clone())
        .with("libpq_says", format!("This may indicate that the server does not support any SSL protocol version between {min} and {max}."))
        .with("note", "PostgreSQL 13+ refuses TLS below 1.2 by default, and OpenSSL 3 at security level 2 (Debian's default) speaks neither TLS 1.0 nor 1.1; the doctor cannot offer them either")
        .fix("remove ssl_max_protocol_version, or set it to TLSv1.2 or TLSv1.3"),
        TlsFailure::Unemulated(why) => Problem::new(
            Code::TlsNotEmulated,
            format!("the doctor's TLS library cannot complete this handshake where libpq (OpenSSL) can: {why}; the TLS verdicts are left undetermined"),
        )
        .fix("check this connection with psql; an ECDSA P-256 or RSA (rsaEncryption) server key, or TLS 1.3, works with every client"),
    }
}
