//! The event bus: events the core and plugins emit for subscribed clients.
//!
//! Events carry Deluge's class names (`PluginEnabledEvent`, `PluginDisabledEvent`, and
//! later torrent events) and basic-type arguments, so any transport can forward them; the
//! Deluge RPC transport sends each connection the events it asked for with
//! `daemon.set_event_interest`.

use serde_json::Value;
use tokio::sync::broadcast;

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
        EventBus { tx }
    }

    /// Sends `name(args…)` to every current subscriber (none is fine).
    pub fn emit(&self, name: &str, args: Vec<Value>) {
        tracing::debug!(event = name, "event");
        let _ = self.tx.send(Event {
            name: name.to_string(),
            args,
        });
    }

    /// A receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
