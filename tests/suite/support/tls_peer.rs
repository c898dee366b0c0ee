//! A scripted TLS peer: answers the SSLRequest with 'S', completes a real TLS handshake
//! (rustls) with a chosen chain, then misbehaves at the protocol level.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Clone, Debug)]
pub enum After {
    /// Close once the handshake is done.
    Close,
    /// AuthenticationSASL offering only a mechanism nobody knows.
    UnknownSasl,
    /// A SCRAM exchange whose server-final signature is wrong.
    BadScramSignature,
    /// A SCRAM server-first message with this iteration count (`i=`), then close.
    ScramIterations(String),
    /// Send `startup` after the StartupMessage; answer each Query with `on_query` repeated
    /// `repeat` times and then ReadyForQuery; stop at Terminate.
    Script {
        startup: Vec<u8>,
        on_query: Vec<u8>,
        repeat: usize,
    },
}

pub fn spawn(chain_der: Vec<Vec<u8>>, key_pkcs8_pem: String, after: After) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let chain: Vec<CertificateDer<'static>> =
        chain_der.into_iter().map(CertificateDer::from).collect();
    let key = {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(key_pkcs8_pem.as_bytes()).expect("key")
    };
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config"),
    );
    thread::spawn(move || {
        for _ in 0..4 {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let config = config.clone();
            let after = after.clone();
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
                let mut req = [0u8; 8];
                if tcp.read_exact(&mut req).is_err() {
                    return;
                }
                if req[4..] != [0x04, 0xd2, 0x16, 0x2f] {
                    return; // a plaintext startup: not for this peer
                }
                let _ = tcp.write_all(b"S");
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                while tls.conn.is_handshaking() {
                    if tls.conn.complete_io(&mut tls.sock).is_err() {
                        return;
                    }
                }
                play(&mut tls, after);
            });
        }
    });
    port
}

fn read_message<S: Read>(s: &mut S, tagged: bool) -> Option<Vec<u8>> {
    if tagged {
        let mut tag = [0u8; 1];
        s.read_exact(&mut tag).ok()?;
    }
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = (u32::from_be_bytes(len) as usize)
        .checked_sub(4)?
        .min(1 << 16);
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn auth(code: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![b'R'];
    out.extend_from_slice(&((8 + data.len()) as u32).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn play<S: Read + Write>(s: &mut S, after: After) {
    if read_message(s, false).is_none() {
        return;
    }
    match after {
        After::Close => {}
        After::Script {
            startup,
            on_query,
            repeat,
        } => {
            if s.write_all(&startup).and_then(|_| s.flush()).is_err() {
                return;
            }
            loop {
                let mut tag = [0u8; 1];
                if s.read_exact(&mut tag).is_err() {
                    return;
                }
                let Some(_) = read_message(s, false) else {
                    return;
                };
                match tag[0] {
                    b'Q' => {
                        for _ in 0..repeat {
                            if s.write_all(&on_query).is_err() {
                                return;
                            }
                        }
                        let _ = s.write_all(b"Z\0\0\0\x05I");
                        let _ = s.flush();
                    }
                    b'X' => return,
                    _ => {}
                }
            }
        }
        After::ScramIterations(iterations) => {
            let _ = s.write_all(&auth(10, b"SCRAM-SHA-256\0\0"));
            let _ = s.flush();
            let Some(initial) = read_message(s, true) else {
                return;
            };
            let text = String::from_utf8_lossy(&initial).into_owned();
            let nonce = text
                .split("r=")
                .nth(1)
                .and_then(|n| n.split(',').next())
                .unwrap_or("")
                .trim_end_matches('\0')
                .to_string();
            let server_first = format!("r={nonce}SERVERPART,s=c2FsdHNhbHRzYWx0,i={iterations}");
            let _ = s.write_all(&auth(11, server_first.as_bytes()));
            let _ = s.flush();
            let _ = read_message(s, true);
        }
        After::UnknownSasl => {
            let _ = s.write_all(&auth(10, b"FOO-MECH\0\0"));
            let _ = s.flush();
            let _ = read_message(s, true);
        }
        After::BadScramSignature => {
            let _ = s.write_all(&auth(10, b"SCRAM-SHA-256\0\0"));
            let _ = s.flush();
            let Some(initial) = read_message(s, true) else {
                return;
            };
            // "SCRAM-SHA-256\0" + i32 length + client-first "n,,n=,r=<nonce>"
            let text = String::from_utf8_lossy(&initial).into_owned();
            let Some(nonce) = text.split("r=").nth(1).map(|n| {
                n.split(',')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('\0')
                    .to_string()
            }) else {
                return;
            };
            let server_first = format!("r={nonce}SERVERPART,s=c2FsdHNhbHRzYWx0,i=4096");
            let _ = s.write_all(&auth(11, server_first.as_bytes()));
            let _ = s.flush();
            let Some(_client_final) = read_message(s, true) else {
                return;
            };
            let _ = s.write_all(&auth(12, b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
            let _ = s.flush();
            let _ = read_message(s, true);
        }
    }
}
