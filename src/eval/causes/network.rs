//! Causes in the network phase: no address, no TCP, no answer; and the connection as the
//! server saw it (address, encryption), for the hba evaluators.

use crate::catalogue::Code;
use crate::eval::model::EvalInput;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::observe::{ConnectFailure, TimeoutKind};
use crate::plan::Endpoint;

pub(in crate::eval) fn connect_problem(err: &ConnectFailure, endpoint: &Endpoint) -> Problem {
    match err {
        ConnectFailure::Resolve { host, reason } => Problem::new(
            Code::TcpConnectFailed,
            format!("could not translate host name \"{host}\" to address: {reason}"),
        )
        .with("host", Value::name(host.clone()))
        .fix("check the host name (DNS, /etc/hosts) or give hostaddr=<ip>"),
        ConnectFailure::Refused { addrs, reason } => Problem::new(
            Code::TcpConnectFailed,
            format!("connection to {} failed: {reason}", endpoint.display()),
        )
        .with("addresses", join_addrs(addrs))
        .with("error", reason.clone())
        .fix("is the server running on that host and accepting TCP/IP connections? Check listen_addresses and port in postgresql.conf, and firewalls"),
        ConnectFailure::Timeout { kind, addrs } => Problem::new(
            Code::ConnectTimeout,
            format!(
                "no TCP connection to {} within {}",
                endpoint.display(),
                timeout_name(*kind)
            ),
        )
        .with("addresses", join_addrs(addrs))
        .fix("a firewall dropping packets, or the wrong address; check with `nc -vz host port`"),
        ConnectFailure::ResolveTimeout { host, kind } => Problem::new(
            Code::ConnectTimeout,
            format!(
                "the resolver did not translate host name \"{host}\" to an address within {}",
                timeout_name(*kind)
            ),
        )
        .with("host", Value::name(host.clone()))
        .fix("the DNS server does not answer: check /etc/resolv.conf, or give hostaddr=<ip>"),
        ConnectFailure::Socket { path, reason } => Problem::new(
            Code::SocketConnectFailed,
            format!("connection to server on socket \"{path}\" failed: {reason}"),
        )
        .with("socket", path.clone())
        .fix("is the server running locally and accepting connections on that socket? Check unix_socket_directories"),
    }
}

pub(in crate::eval) fn join_addrs(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(in crate::eval) fn timeout_name(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Step => "connect_timeout",
        TimeoutKind::Overall => "the --timeout budget",
    }
}

/// The connection as the server saw it, for the pg_hba.conf evaluator.
pub(in crate::eval) fn hba_connection(
    input: &EvalInput,
    on_tls: bool,
) -> crate::hba::matcher::Connection {
    let (local, server) = if on_tls {
        (
            input.tls.and_then(|t| t.local_addr),
            input.tls.and_then(|t| t.addr),
        )
    } else {
        (
            input
                .plain
                .and_then(|p| p.local_addr)
                .or(input.tls.and_then(|t| t.local_addr)),
            input
                .plain
                .and_then(|p| p.addr)
                .or(input.tls.and_then(|t| t.addr)),
        )
    };
    crate::hba::matcher::Connection {
        local: input.endpoint.is_unix_socket(),
        ssl: on_tls,
        client_ip: local.map(|a| a.ip()),
        server_ip: server.map(|a| a.ip()),
        user: input.user.to_string(),
        database: input.dbname.to_string(),
        replication: false,
    }
}
