//! The slots a diagnosis takes before it connects: one of `--concurrency` overall, and one
//! of `--per-server` on the server (address and port) it connects to. A server is its
//! resolved address, not its spelling: `localhost`, `127.1` and `2130706433` are one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::plan::Endpoint;

/// The slots diagnoses take before they connect: overall and per server.
pub struct Slots {
    overall: Option<Arc<Semaphore>>,
    per_server: usize,
    servers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held slot; released when dropped.
pub struct Slot {
    _server: Option<OwnedSemaphorePermit>,
    _overall: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// No limits: one target, or the demo.
    pub fn unlimited() -> Slots {
        Slots {
            overall: None,
            per_server: 0,
            servers: Mutex::new(HashMap::new()),
        }
    }

    pub fn new(concurrency: usize, per_server: usize) -> Slots {
        Slots {
            overall: Some(Arc::new(Semaphore::new(concurrency.max(1)))),
            per_server: per_server.max(1),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot on the endpoint's server, then for one overall: a target waiting on
    /// a busy server holds no overall slot, so it never stalls targets on other servers.
    /// The host name is resolved (within `resolve_within`) to find the server; the time that
    /// took is returned with the slot, for the caller's deadline.
    pub async fn acquire(&self, endpoint: &Endpoint, resolve_within: Duration) -> (Slot, Duration) {
        let Some(overall) = &self.overall else {
            let free = Slot {
                _server: None,
                _overall: None,
            };
            return (free, Duration::ZERO);
        };
        let lookup_started = std::time::Instant::now();
        let key = server_key(endpoint, resolve_within).await;
        let looked_up = lookup_started.elapsed();
        let server = self.servers.lock().ok().map(|mut servers| {
            servers
                .entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
                .clone()
        });
        let server = match server {
            Some(s) => s.acquire_owned().await.ok(),
            None => None,
        };
        let slot = Slot {
            _server: server,
            _overall: overall.clone().acquire_owned().await.ok(),
        };
        (slot, looked_up)
    }
}

/// The server an endpoint reaches: its address (hostaddr, or the first address the name
/// resolves to, as libpq tries it first) and port; the name itself when it does not resolve
/// in time; or the socket's path.
async fn server_key(endpoint: &Endpoint, resolve_within: Duration) -> String {
    if endpoint.is_unix_socket() {
        return endpoint.socket_path().display().to_string();
    }
    if let Some(ip) = endpoint.hostaddr {
        return SocketAddr::new(ip, endpoint.port).to_string();
    }
    let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
    match tokio::time::timeout(resolve_within, lookup).await {
        Ok(Ok(mut addrs)) => match addrs.next() {
            Some(addr) => addr.to_string(),
            None => name_key(endpoint),
        },
        _ => name_key(endpoint),
    }
}

fn name_key(endpoint: &Endpoint) -> String {
    format!("{}:{}", endpoint.host.to_ascii_lowercase(), endpoint.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn endpoint(address: &str, port: u16) -> Endpoint {
        Endpoint {
            host: String::new(),
            hostaddr: Some(address.parse().unwrap()),
            scope_id: 0,
            port,
        }
    }

    /// Whether a slot is granted at once.
    fn granted(slots: &Slots, endpoint: &Endpoint) -> Option<Slot> {
        let mut future = std::pin::pin!(slots.acquire(endpoint, Duration::from_secs(1)));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready((slot, _)) => Some(slot),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_busy_server_does_not_take_the_slots_of_others() {
        let slots = Slots::new(3, 2);
        let a = endpoint("10.0.0.1", 5432);
        let first = granted(&slots, &a).expect("first slot");
        let second = granted(&slots, &a).expect("second slot");
        // The third on the same server waits...
        assert!(granted(&slots, &a).is_none());
        // ...and holds no overall slot meanwhile: another server still gets one.
        let other = granted(&slots, &endpoint("10.0.0.1", 5433)).expect("other server");
        // Now all three overall slots are taken.
        assert!(granted(&slots, &endpoint("10.0.0.2", 5432)).is_none());
        drop(first);
        assert!(granted(&slots, &a).is_some());
        drop((second, other));
        assert!(granted(&Slots::unlimited(), &a).is_some());
    }

    #[test]
    fn spellings_of_one_address_are_one_server() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let named = |host: &str| Endpoint {
            host: host.into(),
            hostaddr: None,
            scope_id: 0,
            port: 5432,
        };
        let keys: Vec<String> = [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f000001",
            "127.000.000.001",
        ]
        .iter()
        .map(|h| runtime.block_on(server_key(&named(h), Duration::from_secs(5))))
        .collect();
        assert!(keys.iter().all(|k| k == "127.0.0.1:5432"), "{keys:?}");
        let unresolvable = runtime.block_on(server_key(
            &named("no-such-host.invalid"),
            Duration::from_secs(5),
        ));
        assert_eq!(unresolvable, "no-such-host.invalid:5432");
    }
}
