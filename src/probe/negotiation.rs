//! The negotiation step: the SSLRequest and the server's one-byte answer, and what came
//! with it.

use std::io;

use super::link::Link;
use crate::observe::{SslReply, TimeoutKind};
use crate::wire;

/// Sends the SSLRequest and reads the answer. One read brings the 'S' and whatever arrived
/// with it: libpq too only looks at what its read of the 'S' brought along (bytes there
/// were injected before the handshake), so a healthy server costs no wait here.
pub async fn ssl_request(link: &mut Link) -> SslReply {
    if let Err(e) = link.write_all(&wire::ssl_request()).await {
        return io_reply(&e, link.timed_out);
    }
    let mut first = vec![0u8; 4096];
    let n = match link.read(&mut first).await {
        Ok(0) => return SslReply::Closed,
        Ok(n) => n,
        Err(e) => return io_reply(&e, link.timed_out),
    };
    let byte = first[0];
    let following = first[1..n].to_vec();
    match byte {
        b'S' if following.is_empty() => SslReply::Accepted,
        b'S' => {
            let mut all = vec![b'S'];
            all.extend_from_slice(&following);
            match wire::identify_foreign_peer(&all) {
                Some(peer) => SslReply::Foreign {
                    bytes: all,
                    peer: peer.into(),
                },
                None => SslReply::Injected { extra: following },
            }
        }
        b'N' => SslReply::Refused,
        b'E' => {
            // The fork-failure text follows, then the server closes; read what is there.
            let mut rest = following;
            let mut chunk = [0u8; 1024];
            while rest.len() < 64 * 1024 {
                if rest.contains(&0) && rest.len() > 5 && rest[0] != 0 {
                    break;
                }
                match link.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
            }
            SslReply::ServerError {
                text: wire::parse_pre_tls_error(&rest),
            }
        }
        other => {
            let mut all = vec![other];
            all.extend_from_slice(&following);
            match wire::identify_foreign_peer(&all) {
                Some(peer) => SslReply::Foreign {
                    bytes: all,
                    peer: peer.into(),
                },
                None => SslReply::Unexpected {
                    byte: other,
                    following,
                },
            }
        }
    }
}

fn io_reply(e: &io::Error, timed_out: Option<TimeoutKind>) -> SslReply {
    if let Some(kind) = timed_out {
        return SslReply::Timeout(kind);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => SslReply::Closed,
        _ => SslReply::Reset(e.to_string()),
    }
}
