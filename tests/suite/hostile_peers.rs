//! Peers a real server cannot play: each must end in a precise finding, the documented exit
//! status, and within the deadline.

use std::time::Duration;

use crate::support::doctor::run_doctor;
use crate::support::fake_peer::{error_response, spawn, Step};

fn doctor_against(port: u16, extra: &[&str]) -> crate::support::doctor::DoctorRun {
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=127.0.0.1 port={port} user=alice dbname=app");
    let mut args = vec![target.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let run = run_doctor(&args, home.path(), None, &[]);
    crate::support::doctor::assert_within_deadline(&run, &args);
    run
}

#[test]
fn ssh_banner_is_named() {
    let port = spawn(
        vec![Step::Send(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec())],
        2,
    );
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let f = run.expect_finding("not_postgres", "error");
    assert!(f["summary"].as_str().unwrap().contains("SSH"), "{f}");
}

#[test]
fn http_server_is_named() {
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
            Step::Close,
        ],
        2,
    );
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 2);
    let f = run.expect_finding("not_postgres", "error");
    assert!(f["summary"].as_str().unwrap().contains("HTTP"), "{f}");
}

#[test]
fn silence_ends_at_connect_timeout() {
    let port = spawn(vec![Step::Sleep(Duration::from_secs(30))], 2);
    let run = doctor_against(port, &["--connect-timeout", "2", "--timeout", "20"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let f = run.expect_finding("connect_timeout", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("connect_timeout"),
        "{f}"
    );
    assert!(
        run.elapsed < Duration::from_secs(12),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn silence_ends_at_the_overall_timeout() {
    let port = spawn(vec![Step::Sleep(Duration::from_secs(30))], 2);
    let run = doctor_against(port, &["--timeout", "2"]);
    assert_eq!(run.code, 2);
    let f = run.expect_finding("connect_timeout", "error");
    assert!(f["summary"].as_str().unwrap().contains("--timeout"), "{f}");
    assert!(
        run.elapsed < Duration::from_secs(12),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn reset_after_the_ssl_request() {
    let port = spawn(vec![Step::Read(8), Step::Reset], 2);
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let f = run.expect_finding("not_postgres", "error");
    assert!(f["summary"].as_str().unwrap().contains("reset"), "{f}");
}

#[test]
fn bytes_injected_after_s_are_refused() {
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"SR\x00\x00\x00\x08\x00\x00\x00\x00".to_vec()),
        ],
        2,
    );
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let f = run.expect_finding("ssl_response_injected", "error");
    assert!(
        crate::support::doctor::evidence(f, "bytes")
            .as_str()
            .unwrap()
            .starts_with("52 00"),
        "{f}"
    );
}

#[test]
fn refused_port_is_tcp_connect_failed() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 2);
    let f = run.expect_finding("tcp_connect_failed", "error");
    assert!(f["summary"].as_str().unwrap().contains("refused"), "{f}");
}

#[test]
fn fork_failure_text_before_tls_is_shown_as_unauthenticated() {
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(
                b"Ecould not fork new process for connection: Resource temporarily unavailable\n\0"
                    .to_vec(),
            ),
            Step::Close,
        ],
        2,
    );
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("server_ssl_error", "error");
    assert!(
        crate::support::doctor::evidence(f, "server_text_unauthenticated")
            .as_str()
            .unwrap()
            .contains("could not fork"),
        "{f}"
    );
}

#[test]
fn fork_failure_text_after_the_startup_message_is_read_as_libpq_reads_it() {
    // The postmaster's pre-3.0 text, in answer to a StartupMessage (sslmode=disable).
    let port = spawn(
        vec![
            Step::ReadStartup,
            Step::Send(
                b"Ecould not fork new process for connection: Resource temporarily unavailable\n\0"
                    .to_vec(),
            ),
            Step::Close,
        ],
        2,
    );
    let run = doctor_against(port, &["--sslmode", "disable", "--check"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.finding("protocol_violation").is_none(),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("could not fork new process for connection"),
        "{}",
        run.stdout
    );
}

#[test]
fn v3_error_response_before_tls() {
    let mut reply = vec![];
    reply.extend_from_slice(&error_response("53300", "sorry, too many clients already"));
    let port = spawn(vec![Step::Read(8), Step::Send(reply), Step::Close], 2);
    let run = doctor_against(port, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("server_ssl_error", "error");
    assert!(
        crate::support::doctor::evidence(f, "server_text_unauthenticated")
            .as_str()
            .unwrap()
            .contains("too many clients"),
        "{f}"
    );
}

#[test]
fn n_then_close_is_a_lost_connection() {
    let port = spawn(
        vec![Step::Read(8), Step::Send(b"N".to_vec()), Step::Close],
        2,
    );
    let run = doctor_against(port, &["--sslmode", "prefer"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.expect_finding("connection_lost", "error");
    run.expect_finding("server_ssl_unsupported", "warning");
}

#[test]
fn server_not_ready_after_n() {
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"N".to_vec()),
            Step::ReadStartup,
            Step::Send(error_response(
                "57P03",
                "the database system is starting up",
            )),
            Step::Close,
        ],
        2,
    );
    let run = doctor_against(port, &["--sslmode", "prefer"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.expect_finding("server_not_ready", "error");
}

#[test]
fn hostile_error_lengths_are_refused_without_allocation() {
    for header in [vec![b'E', 0x7f, 0xff, 0xff, 0xff], vec![b'E', 0, 0, 0, 2]] {
        let port = spawn(
            vec![
                Step::Read(8),
                Step::Send(b"N".to_vec()),
                Step::ReadStartup,
                Step::Send(header),
            ],
            2,
        );
        let run = doctor_against(port, &["--sslmode", "prefer", "--timeout", "5"]);
        assert_eq!(run.code, 1, "{}", run.stdout);
        run.expect_finding("protocol_violation", "error");
        assert!(run.elapsed < Duration::from_secs(10));
    }
}
