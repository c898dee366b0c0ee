//! libpq's host loop over a multi-host target: which host it ends on.

use crate::catalogue::Code;
use crate::eval::model::Judgement;
use crate::sslmode::SslMode;

/// Which host libpq would end on for the requested mode: it skips hosts it cannot reach
/// and servers that are not ready (57P03), and stops at anything else.
pub fn choose_host(hosts: &[&Judgement], requested: SslMode) -> (usize, Vec<String>) {
    let mut reasons = vec![String::new(); hosts.len()];
    for (i, h) in hosts.iter().enumerate() {
        let cell = &h.cells[&requested];
        let skip = matches!(
            cell.code,
            Some(Code::TcpConnectFailed)
                | Some(Code::SocketConnectFailed)
                | Some(Code::ConnectTimeout)
                | Some(Code::ServerNotReady)
        );
        if skip && i + 1 < hosts.len() {
            reasons[i] = format!(
                "skipped: {} at sslmode={requested}, so libpq tries the next host",
                cell.code.map(Code::as_str).unwrap_or_default()
            );
            continue;
        }
        reasons[i] = match cell.ok {
            Some(true) => format!("libpq ends here: sslmode={requested} gets a session"),
            _ => format!(
                "libpq ends here: {} stops the host loop",
                cell.code.map(Code::as_str).unwrap_or("the failure")
            ),
        };
        for r in reasons.iter_mut().skip(i + 1) {
            *r = "not reached by libpq".into();
        }
        return (i, reasons);
    }
    (hosts.len().saturating_sub(1), reasons)
}
