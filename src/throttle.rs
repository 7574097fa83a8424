//! Login throttling and flood-proof log counters, shared by every transport that logs
//! users in (Deluge RPC, the web server's `auth.login`).
//!
//! [`LoginThrottle`]: every login is checked at once and a correct one is answered at
//! once; only the answer to a *failure* waits. The first [`FREE_FAILURES`] failures of a
//! connection, and of a source address, are answered at once. After that a failure's
//! answer waits for the longer of
//! - a per-connection delay that doubles with each further failure on that connection
//!   (100 ms, 200 ms, 400 ms, … at most 5 s), and
//! - the address's next free answer slot: slots are [`ADDRESS_INTERVAL`] apart (at most
//!   ten failure answers a second per address, however many connections ask), so the wait
//!   grows with the address's backlog,
//!
//! and the connection is closed after it. Failures are counted per address (an IPv6
//! address by its /64) and forgotten [`FORGET_AFTER`] after the last one; a correct login
//! does not reset them (it may come from another user on the same address).
//!
//! A correct login is answered at once, so a client that gives up on an unanswered
//! failure learns of it sooner; it still has to open a new connection (and, over RPC,
//! complete a TLS handshake) for every further guess, as a throttled failure holds its
//! connection until it is answered and then closes it.
//!
//! [`Tally`]: counts an event and says when to log it, at most once per interval, with
//! the count since the last line: an attacker repeating an event cannot flood the log.
//!
//! [`shown_user`]: a user name as logs show it, truncated and escaped.

// Shared by the RPC server and the web server: a build with only one of them (or neither,
// where only `Tally` serves the auth file) leaves parts unused.
#![cfg_attr(not(all(feature = "rpc", feature = "web")), allow(dead_code))]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Failures answered at once, per connection and per address.
pub const FREE_FAILURES: u32 = 5;
/// The first throttled failure's per-connection delay; it doubles with each further one.
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// The longest per-connection delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// The least time between two throttled failure answers to one address.
pub const ADDRESS_INTERVAL: Duration = Duration::from_millis(100);
/// An address's failures are forgotten this long after its last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The longest an answer waits for its address slot: a backlog beyond it is answered at
/// this delay (the connection is closed after it anyway).
pub const MAX_BACKLOG: Duration = Duration::from_secs(30);
/// Characters of a user name that logs show.
pub const SHOWN_USER_CHARS: usize = 64;
/// Most addresses remembered; the stalest are dropped beyond it.
const MAX_ADDRESSES: usize = 65_536;

/// What a failed login costs (the default: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Penalty {
    /// How long to wait before answering the failure.
    pub delay: Duration,
    /// Whether to close the connection after answering (the failure was throttled).
    pub close: bool,
}

#[derive(Debug, Clone, Copy)]
struct Address {
    failures: u32,
    last: Instant,
    next_slot: Instant,
}

/// Failed logins per source address; see the [module docs](self).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    addresses: Mutex<HashMap<IpAddr, Address>>,
}

/// The key an address is counted under: IPv6 by its /64 (one host usually has all of
/// it), IPv4-mapped IPv6 as IPv4.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginThrottle {
    /// A throttle with no failures recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The throttle of the accounts in `auth_file`: every transport logging users in
    /// against the same file gets the same one (while any of them holds it), so an
    /// attacker gains nothing by alternating transports.
    pub fn for_accounts(auth_file: &Path) -> Arc<LoginThrottle> {
        static SHARED: OnceLock<Mutex<HashMap<PathBuf, Weak<LoginThrottle>>>> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared.retain(|_, w| w.strong_count() > 0);
        if let Some(t) = shared.get(auth_file).and_then(Weak::upgrade) {
            return t;
        }
        let t = Arc::new(LoginThrottle::new());
        shared.insert(auth_file.to_path_buf(), Arc::downgrade(&t));
        t
    }

    /// Records a failed login from `addr`, the `connection_failures`-th on its connection
    /// (1 for the first); returns what it costs.
    pub fn failure(&self, addr: IpAddr, connection_failures: u32) -> Penalty {
        self.failure_at(addr, connection_failures, Instant::now())
    }

    fn failure_at(&self, addr: IpAddr, connection_failures: u32, now: Instant) -> Penalty {
        let mut map = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, a| now.duration_since(a.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES {
                // Still full: drop the stalest half.
                let mut lasts: Vec<Instant> = map.values().map(|a| a.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, a| a.last > cut);
            }
        }
        let entry = map.entry(key(addr)).or_insert(Address {
            failures: 0,
            last: now,
            next_slot: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let conn_over = connection_failures.saturating_sub(FREE_FAILURES);
        let addr_over = entry.failures.saturating_sub(FREE_FAILURES);
        if conn_over == 0 && addr_over == 0 {
            return Penalty {
                delay: Duration::ZERO,
                close: false,
            };
        }
        let conn_delay = if conn_over == 0 {
            Duration::ZERO
        } else {
            BASE_DELAY
                .saturating_mul(1u32 << (conn_over - 1).min(16))
                .min(MAX_DELAY)
        };
        let slot = entry.next_slot.max(now);
        entry.next_slot = slot + ADDRESS_INTERVAL;
        let delay = conn_delay.max(slot - now).min(MAX_BACKLOG);
        Penalty { delay, close: true }
    }

    /// Failures recorded for `addr` (and not yet forgotten).
    pub fn failures(&self, addr: IpAddr) -> u32 {
        let map = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key(addr))
            .filter(|a| a.last.elapsed() < FORGET_AFTER)
            .map_or(0, |a| a.failures)
    }
}

/// A user name as logs show it: at most [`SHOWN_USER_CHARS`] characters (with `…` when
/// cut), to be logged with `{:?}` (escaped).
pub fn shown_user(user: &str) -> String {
    let mut chars = user.chars();
    let mut shown: String = chars.by_ref().take(SHOWN_USER_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

/// Counts an event; [`hit`](Tally::hit) says when to log it. See the [module docs](self).
#[derive(Debug)]
pub struct Tally {
    interval: Duration,
    state: Mutex<TallyState>,
}

#[derive(Debug)]
struct TallyState {
    last_line: Option<Instant>,
    count: u64,
}

impl Tally {
    /// A tally logged at most once per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Tally {
            interval,
            state: Mutex::new(TallyState {
                last_line: None,
                count: 0,
            }),
        }
    }

    /// Counts one event; `Some(n)` when a line is due now, `n` the events since the last
    /// line (this one included).
    pub fn hit(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.count += 1;
        let now = Instant::now();
        match s.last_line {
            Some(t) if now.duration_since(t) < self.interval => None,
            _ => {
                s.last_line = Some(now);
                Some(std::mem::take(&mut s.count))
            }
        }
    }

    /// The events not logged yet, if any and a line is due (for a periodic flush).
    pub fn due(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.count == 0
            || s.last_line
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return None;
        }
        s.last_line = Some(now);
        Some(std::mem::take(&mut s.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn free_failures_then_spaced_answers() {
        let t = LoginThrottle::new();
        let now = Instant::now();
        for i in 1..=FREE_FAILURES {
            let p = t.failure_at(A, 1, now);
            assert_eq!(p.delay, Duration::ZERO, "failure {i}");
            assert!(!p.close);
        }
        // Many connections, each on its first failure: answers 100 ms apart.
        let delays: Vec<Duration> = (0..20).map(|_| t.failure_at(A, 1, now).delay).collect();
        for (i, d) in delays.iter().enumerate() {
            assert_eq!(*d, ADDRESS_INTERVAL * i as u32);
        }
        // Another address is not slowed.
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.failure_at(other, 1, now).delay, Duration::ZERO);
        assert_eq!(t.failures(A), FREE_FAILURES + 20);
    }

    #[test]
    fn per_connection_delay_doubles() {
        let t = LoginThrottle::new();
        let mut now = Instant::now();
        let mut seen = Vec::new();
        for n in 1..=10 {
            // Far apart: the address slot never binds, other addresses each time.
            let addr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n as u8));
            seen.push(t.failure_at(addr, n, now).delay);
            now += Duration::from_secs(60);
        }
        assert_eq!(&seen[..5], &[Duration::ZERO; 5]);
        assert_eq!(seen[5], Duration::from_millis(100));
        assert_eq!(seen[6], Duration::from_millis(200));
        assert_eq!(seen[9], Duration::from_millis(1600));
    }

    #[test]
    fn forgotten_after_a_while_and_ipv6_by_prefix() {
        let t = LoginThrottle::new();
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            t.failure_at(a, 1, now);
        }
        assert!(t.failure_at(b, 1, now).close, "same /64");
        assert!(!t.failure_at(a, 1, now + FORGET_AFTER).close);
    }

    #[test]
    fn users_are_cut_and_tallies_count() {
        assert_eq!(shown_user("bob"), "bob");
        let long = "x".repeat(1000);
        assert_eq!(shown_user(&long).chars().count(), SHOWN_USER_CHARS + 1);
        let tally = Tally::new(Duration::from_secs(3600));
        assert_eq!(tally.hit(), Some(1));
        assert_eq!(tally.hit(), None);
        assert_eq!(tally.hit(), None);
        assert_eq!(tally.due(), None);
        let quick = Tally::new(Duration::ZERO);
        assert_eq!(quick.hit(), Some(1));
        assert_eq!(quick.due(), None);
    }
}
