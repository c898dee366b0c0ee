//! Peers a real server cannot play: each must end in a precise finding, the documented exit
//! status, and within the deadline.

mod support;

use std::time::Duration;

use support::doctor::run_doctor;
use support::fake_peer::{spawn, Step};

fn doctor_against(port: u16, extra: &[&str]) -> support::doctor::DoctorRun {
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=127.0.0.1 port={port} user=alice dbname=app");
    let mut args = vec![target.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    run_doctor(&args, home.path(), None, &[])
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
        f["evidence"]["bytes"]
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
