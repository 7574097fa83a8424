//! The event bus: events the core and plugins emit for subscribed clients.
//!
//! Events carry Deluge's class names (`PluginEnabledEvent`, `PluginDisabledEvent`, and
//! later torrent events) and basic-type arguments, so any transport can forward them; the
//! Deluge RPC transport sends each connection the events it asked for with
//! `daemon.set_event_interest`.
//!
//! The bus also counts who wants which event ([`EventBus::register`]): an event that costs
//! something to compute (the torrent state events walk the engine's torrents) is computed
//! only while someone registered for it, and its producer sleeps meanwhile
//! ([`EventBus::wait_wanted`]). A producer that compares what it sees with what it saw
//! last takes its first look inside the registration that wakes it
//! ([`EventBus::on_first_interest`]), so a change right after `register` returns is
//! announced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event class name, e.g. `PluginEnabledEvent`.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Value>,
}

/// Events in flight a slow subscriber may fall behind by before it misses some.
pub const CAPACITY: usize = 256;

/// A broadcast bus of [`Event`]s; clones share the bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    interest: Arc<Interests>,
}

/// How many registrations want each event name; `changed` ticks at every change.
#[derive(Debug)]
struct Interests {
    counts: Mutex<HashMap<String, usize>>,
    changed: watch::Sender<u64>,
    hooks: Mutex<Vec<Hook>>,
}

/// What to run when some of `names` become wanted ([`EventBus::on_first_interest`]).
struct Hook {
    names: Vec<String>,
    run: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook").field("names", &self.names).finish()
    }
}

impl Interests {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wanted(&self, names: &[&str]) -> bool {
        let counts = self.counts();
        names.iter().any(|n| counts.get(*n).is_some_and(|c| *c > 0))
    }
}

/// Whether `counts` has a registration for any of `names`.
fn any_counted<S: AsRef<str>>(counts: &HashMap<String, usize>, names: &[S]) -> bool {
    names
        .iter()
        .any(|n| counts.get(n.as_ref()).is_some_and(|c| *c > 0))
}

/// A registration of interest in some event names ([`EventBus::register`]): counted while
/// it lives, dropped when its holder (a client connection) ends or changes its interest.
#[derive(Debug)]
#[must_use = "the interest ends when this is dropped"]
pub struct Interest {
    bus: Weak<Interests>,
    names: Vec<String>,
}

impl Interest {
    /// The names registered.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        let Some(bus) = self.bus.upgrade() else {
            return;
        };
        {
            let mut counts = bus.counts();
            for name in &self.names {
                if let Some(c) = counts.get_mut(name) {
                    *c -= 1;
                    if *c == 0 {
                        counts.remove(name);
                    }
                }
            }
        }
        bus.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A bus handle that does not keep the bus alive ([`EventBus::downgrade`]): a producer
/// holding it ends once every [`EventBus`] clone is gone.
#[derive(Debug, Clone)]
pub struct WeakEventBus {
    tx: broadcast::WeakSender<Event>,
    interest: Weak<Interests>,
}

impl WeakEventBus {
    /// The bus, if some [`EventBus`] clone still holds it.
    pub fn upgrade(&self) -> Option<EventBus> {
        Some(EventBus {
            tx: self.tx.upgrade()?,
            interest: self.interest.upgrade()?,
        })
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let (changed, _) = watch::channel(0);
        EventBus {
            tx,
            interest: Arc::new(Interests {
                counts: Mutex::default(),
                changed,
                hooks: Mutex::default(),
            }),
        }
    }

    /// Sends `name(args…)` to every current subscriber (none is fine).
    pub fn emit(&self, name: &str, args: Vec<Value>) {
        tracing::debug!(event = name, "event");
        let _ = self.tx.send(Event {
            name: name.to_string(),
            args,
        });
    }

    /// A receiver of every event emitted from now on. Events computed on demand (the
    /// torrent state events) are emitted only while someone [registered](Self::register)
    /// for them.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Registers interest in the events `names` until the returned [`Interest`] is
    /// dropped (a name registered twice counts twice; empty names are ignored).
    pub fn register<I, S>(&self, names: I) -> Interest
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(Into::into)
            .filter(|n| !n.is_empty())
            .collect();
        names.sort_unstable();
        names.dedup();
        let hooks = self
            .interest
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let woken: Vec<Arc<dyn Fn() + Send + Sync>> = {
            let mut counts = self.interest.counts();
            let was: Vec<bool> = hooks
                .iter()
                .map(|h| any_counted(&counts, &h.names))
                .collect();
            for name in &names {
                *counts.entry(name.clone()).or_default() += 1;
            }
            hooks
                .iter()
                .zip(was)
                .filter(|(h, was)| !was && any_counted(&counts, &h.names))
                .map(|(h, _)| h.run.clone())
                .collect()
        };
        // Outside the counts' lock (a hook may look at them); under the hooks' lock, so
        // that two registrations' first looks do not interleave.
        for run in woken {
            run();
        }
        drop(hooks);
        self.interest
            .changed
            .send_modify(|n| *n = n.wrapping_add(1));
        Interest {
            bus: Arc::downgrade(&self.interest),
            names,
        }
    }

    /// Runs `hook` inside every [`register`](Self::register) that makes some of `names`
    /// wanted when none of them was, before that registration returns (and before a
    /// producer waiting in [`wait_wanted`](Self::wait_wanted) wakes): where a producer
    /// takes the first look it compares later ones with, so that nothing that happens
    /// after the registration is missed. The hook must not register or drop interests.
    pub fn on_first_interest(&self, names: &[&str], hook: impl Fn() + Send + Sync + 'static) {
        self.interest
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Hook {
                names: names.iter().map(|n| n.to_string()).collect(),
                run: Arc::new(hook),
            });
    }

    /// Whether someone registered for any of `names`.
    pub fn wanted(&self, names: &[&str]) -> bool {
        self.interest.wanted(names)
    }

    /// How many registrations want `name`.
    pub fn interest_in(&self, name: &str) -> usize {
        self.interest.counts().get(name).copied().unwrap_or(0)
    }

    /// A handle that does not keep the bus alive.
    pub fn downgrade(&self) -> WeakEventBus {
        WeakEventBus {
            tx: self.tx.downgrade(),
            interest: Arc::downgrade(&self.interest),
        }
    }

    /// Completes once someone wants any of `names` (at once if someone does), without a
    /// timer; `false` if the bus is gone meanwhile (every [`EventBus`] clone dropped).
    pub async fn wait_wanted(bus: &WeakEventBus, names: &[&str]) -> bool {
        let mut changes = {
            let Some(interest) = bus.interest.upgrade() else {
                return false;
            };
            interest.changed.subscribe()
        };
        loop {
            match bus.interest.upgrade() {
                Some(interest) if interest.wanted(names) => return true,
                Some(_) => {}
                None => return false,
            }
            // Waits without holding the bus: it can be dropped meanwhile, which ends this.
            if changes.changed().await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_is_counted_per_name_until_each_registration_is_dropped() {
        let bus = EventBus::new();
        assert!(!bus.wanted(&["A"]));
        let one = bus.register(["A", "B", "A", ""]);
        assert_eq!(one.names(), ["A", "B"]);
        let two = bus.register(["A"]);
        assert_eq!((bus.interest_in("A"), bus.interest_in("B")), (2, 1));
        assert!(bus.wanted(&["B", "C"]));
        drop(one);
        assert_eq!((bus.interest_in("A"), bus.interest_in("B")), (1, 0));
        assert!(!bus.wanted(&["B", "C"]));
        drop(two);
        assert!(!bus.wanted(&["A"]));
        assert_eq!(bus.interest_in(""), 0);
    }

    #[tokio::test]
    async fn wait_wanted_wakes_on_a_registration_and_ends_when_the_bus_is_gone() {
        let bus = EventBus::new();
        let weak = bus.downgrade();
        let waiter = tokio::spawn({
            let weak = weak.clone();
            async move { EventBus::wait_wanted(&weak, &["X"]).await }
        });
        // Another name does not wake it for good.
        let other = bus.register(["Y"]);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let interest = bus.register(["X"]);
        assert!(waiter.await.unwrap());
        drop((other, interest));
        let waiter = tokio::spawn(async move { EventBus::wait_wanted(&weak, &["X"]).await });
        tokio::task::yield_now().await;
        drop(bus);
        assert!(!waiter.await.unwrap());
    }

    #[test]
    fn the_first_interest_hook_runs_inside_the_registration_that_makes_names_wanted() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let bus = EventBus::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        bus.on_first_interest(&["X", "Z"], move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let runs = move || runs.load(Ordering::SeqCst);
        let other = bus.register(["Y"]);
        assert_eq!(runs(), 0, "another name");
        let first = bus.register(["X"]);
        assert_eq!(runs(), 1, "before register returned");
        let second = bus.register(["X", "Z"]);
        assert_eq!(runs(), 1, "already wanted");
        drop(first);
        drop(second);
        let again = bus.register(["Z", "Y"]);
        assert_eq!(runs(), 2, "wanted again after nobody did");
        drop((other, again));
    }
}
