//! A scripted peer for behaviour no real PostgreSQL server produces: banners of other
//! protocols, silence, resets, bytes injected after 'S'. Bound to 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Step {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Read exactly this many bytes from the client.
    Read(usize),
    /// Read one length-prefixed message without a tag (a StartupMessage).
    ReadStartup,
    /// Wait.
    Sleep(Duration),
    /// Close with RST instead of FIN.
    Reset,
    /// Close normally.
    Close,
}

/// Listens on a free port and plays `script` for each of up to `connections` clients.
/// Returns the port. The thread ends by itself; a script never waits longer than 30 s.
pub fn spawn(script: Vec<Step>, connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let script = script.clone();
            thread::spawn(move || play(stream, &script));
        }
    });
    port
}

fn play(mut stream: TcpStream, script: &[Step]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    for step in script {
        match step {
            Step::Send(bytes) => {
                if stream.write_all(bytes).is_err() {
                    return;
                }
            }
            Step::Read(n) => {
                let mut buf = vec![0u8; *n];
                if stream.read_exact(&mut buf).is_err() {
                    return;
                }
            }
            Step::ReadStartup => {
                let mut len = [0u8; 4];
                if stream.read_exact(&mut len).is_err() {
                    return;
                }
                let n = (u32::from_be_bytes(len) as usize)
                    .saturating_sub(4)
                    .min(1 << 16);
                let mut body = vec![0u8; n];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
            }
            Step::Sleep(d) => thread::sleep(*d),
            Step::Reset => {
                reset(&stream);
                return;
            }
            Step::Close => return,
        }
    }
    // Keep the connection open (silently) until the client gives up.
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// SO_LINGER with a zero timeout makes close() send RST.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// An ErrorResponse with the given severity, SQLSTATE and message.
pub fn error_response(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}
