//! The slots a diagnosis takes before it connects: one of `--concurrency` overall, and one
//! of `--per-server` on the server (address and port) it connects to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    pub async fn acquire(&self, endpoint: &Endpoint) -> Slot {
        let Some(overall) = &self.overall else {
            return Slot {
                _server: None,
                _overall: None,
            };
        };
        let server = self.servers.lock().ok().map(|mut servers| {
            servers
                .entry(server_key(endpoint))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
                .clone()
        });
        let server = match server {
            Some(s) => s.acquire_owned().await.ok(),
            None => None,
        };
        Slot {
            _server: server,
            _overall: overall.clone().acquire_owned().await.ok(),
        }
    }
}

/// The server an endpoint reaches, as far as is known before resolving: its address when
/// given, else its name, and the port; or the socket's path.
fn server_key(endpoint: &Endpoint) -> String {
    if endpoint.is_unix_socket() {
        return endpoint.socket_path().display().to_string();
    }
    match endpoint.hostaddr {
        Some(ip) => format!("{ip}:{}", endpoint.port),
        None => format!("{}:{}", endpoint.host.to_ascii_lowercase(), endpoint.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn endpoint(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            hostaddr: None,
            scope_id: 0,
            port,
        }
    }

    /// Whether a slot is granted at once.
    fn granted(slots: &Slots, endpoint: &Endpoint) -> Option<Slot> {
        let mut future = std::pin::pin!(slots.acquire(endpoint));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(slot) => Some(slot),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_busy_server_does_not_take_the_slots_of_others() {
        let slots = Slots::new(3, 2);
        let a = endpoint("DB.example.com", 5432);
        let first = granted(&slots, &a).expect("first slot");
        let second = granted(&slots, &endpoint("db.example.com", 5432)).expect("second slot");
        // The third on the same server (names compare case-insensitively) waits...
        assert!(granted(&slots, &a).is_none());
        // ...and holds no overall slot meanwhile: another server still gets one.
        let other = granted(&slots, &endpoint("db.example.com", 5433)).expect("other server");
        // Now all three overall slots are taken.
        assert!(granted(&slots, &endpoint("db2.example.com", 5432)).is_none());
        drop(first);
        assert!(granted(&slots, &a).is_some());
        drop((second, other));
        assert!(granted(&Slots::unlimited(), &a).is_some());
    }
}
