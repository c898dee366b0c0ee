//! The link step: name resolution and the TCP or Unix-socket connection, and a socket whose
//! every read and write is bounded by the step and overall deadlines.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::observe::{ConnectFailure, TimeoutKind};
use crate::plan::Endpoint;

/// The limits every network step runs under.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub overall: Instant,
    pub step: Option<Duration>,
}

impl Deadlines {
    /// How long the next network step may take, and which deadline that is.
    fn step_limit(self) -> (Instant, TimeoutKind) {
        let now = Instant::now();
        match self.step.and_then(|step| now.checked_add(step)) {
            Some(end) if end < self.overall => (end, TimeoutKind::Step),
            _ => (self.overall, TimeoutKind::Overall),
        }
    }
}

/// A connected socket under deadlines.
pub struct Link {
    sock: Sock,
    deadlines: Deadlines,
    pub(super) step_deadline: Option<Instant>,
    pub timed_out: Option<TimeoutKind>,
    /// How long the TCP connect took: a round-trip estimate.
    pub(super) rtt: Duration,
}

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

fn deadline_reached() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline reached")
}

impl Link {
    fn new(sock: Sock, deadlines: Deadlines, rtt: Duration) -> Link {
        let mut link = Link {
            sock,
            deadlines,
            step_deadline: None,
            timed_out: None,
            rtt,
        };
        link.begin_step();
        link
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.sock {
            Sock::Tcp(s) => s.local_addr().ok(),
            Sock::Unix(_) => None,
        }
    }

    /// Starts the clock of a new step (the step deadline is libpq's connect_timeout).
    pub fn begin_step(&mut self) {
        self.step_deadline = self
            .deadlines
            .step
            .and_then(|d| Instant::now().checked_add(d));
    }

    fn deadline(&self) -> (Instant, TimeoutKind) {
        match self.step_deadline {
            Some(step) if step < self.deadlines.overall => (step, TimeoutKind::Step),
            _ => (self.deadlines.overall, TimeoutKind::Overall),
        }
    }

    /// One read of what has arrived (at most `buf.len()` bytes), within the deadline.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.deadline();
        match &mut self.sock {
            Sock::Tcp(s) => within(limit, &mut self.timed_out, s.read(buf)).await,
            Sock::Unix(s) => within(limit, &mut self.timed_out, s.read(buf)).await,
        }
    }

    /// Writes all of `bytes` within the deadline.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let limit = self.deadline();
        match &mut self.sock {
            Sock::Tcp(s) => within(limit, &mut self.timed_out, s.write_all(bytes)).await,
            Sock::Unix(s) => within(limit, &mut self.timed_out, s.write_all(bytes)).await,
        }
    }
}

/// Runs one socket operation until `limit`, noting which deadline ended it.
async fn within<T>(
    (deadline, kind): (Instant, TimeoutKind),
    timed_out: &mut Option<TimeoutKind>,
    operation: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    if Instant::now() >= deadline {
        *timed_out = Some(kind);
        return Err(deadline_reached());
    }
    let at = tokio::time::Instant::from_std(deadline);
    tokio::time::timeout_at(at, operation)
        .await
        .unwrap_or_else(|_| {
            *timed_out = Some(kind);
            Err(deadline_reached())
        })
}

/// getaddrinfo under the deadline (tokio runs it on a blocking thread; the probe stops
/// waiting when the step's time is up).
async fn resolve_within(
    host: &str,
    port: u16,
    deadlines: Deadlines,
) -> Result<Vec<SocketAddr>, ConnectFailure> {
    let (deadline, kind) = deadlines.step_limit();
    let at = tokio::time::Instant::from_std(deadline);
    match tokio::time::timeout_at(at, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(ConnectFailure::Resolve {
            host: host.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => Err(ConnectFailure::ResolveTimeout {
            host: host.to_string(),
            kind,
        }),
    }
}

/// Opens the connection libpq would open: each resolved address in turn, TCP_NODELAY set.
pub async fn connect(
    endpoint: &Endpoint,
    deadlines: Deadlines,
) -> Result<(Link, Option<SocketAddr>), ConnectFailure> {
    if endpoint.is_unix_socket() {
        let path = endpoint.socket_path();
        let (deadline, kind) = deadlines.step_limit();
        let at = tokio::time::Instant::from_std(deadline);
        return match tokio::time::timeout_at(at, UnixStream::connect(&path)).await {
            Ok(Ok(s)) => Ok((Link::new(Sock::Unix(s), deadlines, Duration::ZERO), None)),
            Ok(Err(e)) => Err(ConnectFailure::Socket {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(_) => Err(ConnectFailure::Timeout {
                kind,
                addrs: Vec::new(),
            }),
        };
    }
    let addrs: Vec<SocketAddr> = match endpoint.hostaddr {
        Some(std::net::IpAddr::V6(ip)) if endpoint.scope_id != 0 => vec![SocketAddr::V6(
            std::net::SocketAddrV6::new(ip, endpoint.port, 0, endpoint.scope_id),
        )],
        Some(ip) => vec![SocketAddr::new(ip, endpoint.port)],
        None => resolve_within(&endpoint.host, endpoint.port, deadlines).await?,
    };
    let mut last_error = String::from("no addresses");
    let mut timed_out = None;
    for addr in &addrs {
        let (deadline, kind) = deadlines.step_limit();
        if Instant::now() >= deadline {
            timed_out = Some(TimeoutKind::Overall);
            break;
        }
        let started = Instant::now();
        let at = tokio::time::Instant::from_std(deadline);
        match tokio::time::timeout_at(at, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // libpq sets TCP_NODELAY: without it Nagle and delayed ACKs stall the startup.
                let _ = stream.set_nodelay(true);
                let link = Link::new(Sock::Tcp(stream), deadlines, started.elapsed());
                return Ok((link, Some(*addr)));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => timed_out = Some(kind),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => timed_out = Some(kind),
        }
    }
    match timed_out {
        Some(kind) => Err(ConnectFailure::Timeout { kind, addrs }),
        None => Err(ConnectFailure::Refused {
            addrs,
            reason: last_error,
        }),
    }
}
