//! Connection caps (docs/behaviour.md "Connections"): at most `max` connections per node (HTTP
//! and HTTPS listeners together, upgraded WebSockets included) and `max_per_ip` per source
//! address. A connection over a cap is not dropped blindly: a few of them (`shed_slots`) are
//! served in "shed" mode (health and metrics answered, everything else refused in AWS's
//! format, then closed) so probes keep working under a flood. When every shed slot is taken,
//! a newcomer takes the oldest one (whose holder had its two seconds): a flood of silent
//! connections cannot keep a health check out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// The shed connections, oldest first, each with the signal that evicts it.
    shed: Mutex<VecDeque<(u64, Arc<tokio::sync::Notify>)>>,
    next_shed: AtomicU64,
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
    /// Over a cap with no shed slot at all (`shed_slots` 0): close it (after a best-effort
    /// refusal).
    Refuse(Refusal),
}

/// Counts one connection until dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    /// A shed connection's slot and the signal that takes it back.
    shed: Option<(u64, Arc<tokio::sync::Notify>)>,
}

impl Ticket {
    /// Fires when a newer shed connection takes this one's slot (shed connections only).
    pub fn evicted(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.shed.as_ref().map(|(_, n)| Arc::clone(n))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        if let Some((id, _)) = &self.shed {
            let mut q = a.shed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = q.iter().position(|(other, _)| other == id) {
                q.remove(i);
            }
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
            shed: Mutex::new(VecDeque::new()),
            next_shed: AtomicU64::new(0),
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
                    shed: None,
                })
            }
            Err(r) => r,
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.caps.shed_slots == 0 {
            return Admit::Refuse(refusal);
        }
        let signal = Arc::new(tokio::sync::Notify::new());
        let id = self.next_shed.fetch_add(1, Ordering::Relaxed);
        let mut q = self.shed.lock().unwrap_or_else(|p| p.into_inner());
        while q.len() >= self.caps.shed_slots {
            if let Some((_, oldest)) = q.pop_front() {
                oldest.notify_one();
            }
        }
        q.push_back((id, Arc::clone(&signal)));
        drop(q);
        Admit::Shed(
            Ticket {
                admission: Arc::clone(self),
                ip: None,
                shed: Some((id, signal)),
            },
            refusal,
        )
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
/// process's own files (store, Redis, TURN sockets, the runtime: about 40), the shed slots and
/// the spare descriptor: an eighth of the limit, 128 to 2,048.
pub fn auto_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 8).clamp(128, 2048);
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
        let Admit::Shed(first, _) = &shed else {
            unreachable!()
        };
        let evicted = first.evicted().expect("a shed ticket");
        // The only shed slot is taken: a newcomer takes it from the older one.
        let newer = a.admit(ip(1));
        assert!(matches!(newer, Admit::Shed(_, r) if r == canned::SOURCE_FULL));
        tokio_test_notified(&evicted);
        drop(newer);
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
        assert!(
            a.shed.lock().expect("lock").is_empty(),
            "every shed slot is back"
        );
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
        // No shed slot: over the cap is refused outright.
        assert!(tickets.iter().all(|t| matches!(t, Admit::Serve(_))));
        assert!(matches!(a.admit(ip(1)), Admit::Refuse(r) if r == canned::NODE_FULL));
    }

    /// The eviction signal was given (its permit is stored; `notified` returns at once).
    fn tokio_test_notified(n: &tokio::sync::Notify) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), n.notified())
                .await
                .expect("the older shed connection was told to go");
        });
    }

    #[test]
    fn auto_cap_leaves_a_reserve() {
        assert_eq!(auto_max_connections(20_000), 20_000 - 2048);
        assert_eq!(auto_max_connections(1024), 1024 - 128);
        assert_eq!(auto_max_connections(256), 256 - 128);
        assert_eq!(auto_max_connections(10), 16);
    }
}
