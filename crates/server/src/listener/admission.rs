//! Connection caps (docs/behaviour.md "Connections"): at most `max` connections per node (HTTP
//! and HTTPS listeners together, upgraded WebSockets included) and `max_per_ip` per source
//! address. A connection over a cap is not dropped blindly: a few of them (`shed_slots`) are
//! served in "shed" mode (health and metrics answered, everything else refused in AWS's
//! format, then closed) so probes keep working under a flood; beyond those, it is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::canned::{self, Refusal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Connections per node; never 0 here (auto is resolved before).
    pub max: usize,
    /// Connections per source address; 0: no cap.
    pub max_per_ip: usize,
    /// Over-cap connections served at once in shed mode.
    pub shed_slots: usize,
}

#[derive(Debug)]
pub struct Admission {
    caps: Caps,
    open: AtomicUsize,
    shedding: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicUsize,
}

/// What a new connection gets.
#[derive(Debug)]
pub enum Admit {
    /// Served normally; the ticket is held for the connection's life.
    Serve(Ticket),
    /// Over a cap: served in shed mode with this refusal for anything but health and metrics.
    Shed(Ticket, Refusal),
    /// Over a cap with no shed slot left: close it (after a best-effort refusal).
    Refuse(Refusal),
}

/// Counts one connection until dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    shed: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        if self.shed {
            a.shedding.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        a.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.ip {
            let mut map = a.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Admission {
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: AtomicUsize::new(0),
            shedding: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            refused: AtomicUsize::new(0),
        })
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Connections served normally right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused or shed since start.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Admit {
        let refusal = match self.try_take(ip) {
            Ok(()) => {
                return Admit::Serve(Ticket {
                    admission: Arc::clone(self),
                    ip: Some(ip),
                    shed: false,
                })
            }
            Err(r) => r,
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        let took = self
            .shedding
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.caps.shed_slots).then_some(n + 1)
            });
        match took {
            Ok(_) => Admit::Shed(
                Ticket {
                    admission: Arc::clone(self),
                    ip: None,
                    shed: true,
                },
                refusal,
            ),
            Err(_) => Admit::Refuse(refusal),
        }
    }

    fn try_take(&self, ip: IpAddr) -> Result<(), Refusal> {
        let took = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.caps.max).then_some(n + 1)
            });
        if took.is_err() {
            return Err(canned::NODE_FULL);
        }
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if self.caps.max_per_ip != 0 && *n >= self.caps.max_per_ip {
            if *n == 0 {
                map.remove(&ip);
            }
            drop(map);
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(canned::SOURCE_FULL);
        }
        *n += 1;
        Ok(())
    }
}

/// The node cap `--max-connections 0` stands for: the open-file limit minus a reserve for the
/// store, Redis, TURN sockets and shed connections (an eighth of the limit, 64 to 2,048).
pub fn auto_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 8).clamp(64, 2048);
    usize::try_from(nofile.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn caps_per_node_and_per_address_with_shed_slots() {
        let a = Admission::new(Caps {
            max: 3,
            max_per_ip: 2,
            shed_slots: 1,
        });
        let t1 = a.admit(ip(1));
        let t2 = a.admit(ip(1));
        assert!(matches!(t1, Admit::Serve(_)) && matches!(t2, Admit::Serve(_)));
        let shed = a.admit(ip(1));
        assert!(matches!(shed, Admit::Shed(_, r) if r == canned::SOURCE_FULL));
        let refused = a.admit(ip(1));
        assert!(matches!(refused, Admit::Refuse(r) if r == canned::SOURCE_FULL));
        let t3 = a.admit(ip(2));
        assert!(matches!(t3, Admit::Serve(_)));
        drop(shed);
        assert!(matches!(a.admit(ip(3)), Admit::Shed(_, r) if r == canned::NODE_FULL));
        assert_eq!(a.open(), 3);
        drop(t1);
        assert_eq!(a.open(), 2);
        assert!(
            matches!(a.admit(ip(1)), Admit::Serve(_)),
            "a slot of 127.0.0.1 came back"
        );
        assert_eq!(a.refused(), 3);
        drop((t2, t3));
        assert!(a.per_ip.lock().expect("lock").get(&ip(2)).is_none());
    }

    #[test]
    fn no_per_address_cap_when_zero() {
        let a = Admission::new(Caps {
            max: 100,
            max_per_ip: 0,
            shed_slots: 0,
        });
        let tickets: Vec<_> = (0..100).map(|_| a.admit(ip(1))).collect();
        assert!(tickets.iter().all(|t| matches!(t, Admit::Serve(_))));
        assert!(matches!(a.admit(ip(1)), Admit::Refuse(r) if r == canned::NODE_FULL));
    }

    #[test]
    fn auto_cap_leaves_a_reserve() {
        assert_eq!(auto_max_connections(20_000), 20_000 - 2048);
        assert_eq!(auto_max_connections(1024), 1024 - 128);
        assert_eq!(auto_max_connections(256), 256 - 64);
        assert_eq!(auto_max_connections(10), 16);
    }
}
