//! Deluge's torrent state events (`TorrentStateChangedEvent(id, state)`,
//! `TorrentFinishedEvent(id)`), computed only while a client wants them: the watcher sleeps
//! (no timer) until someone registers for them on the event bus, then compares the
//! engine's states once a second with what it saw last, in place, from a fresh look taken
//! inside the registration that began the interest (no event for a change nobody was
//! watching; every change after the registration returned is announced).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;

use crate::event::{EventBus, WeakEventBus};
use crate::host::WeakHost;
use crate::torrent::{TorrentEngine, TorrentState};

/// The events the watcher computes.
pub(crate) const STATE_EVENTS: [&str; 2] = ["TorrentStateChangedEvent", "TorrentFinishedEvent"];

/// How often the states are compared while someone listens.
const PERIOD: Duration = Duration::from_secs(1);

/// Starts the watcher of `engine`'s torrent states, emitting on `events`; it ends when the
/// host or the bus is gone.
pub(in crate::service) fn watch_states(
    engine: Arc<dyn TorrentEngine>,
    events: &EventBus,
    host: WeakHost,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: torrent state events are off");
        return;
    };
    let known = Shared::default();
    let (first_look, weak) = (known.clone(), Arc::downgrade(&engine));
    events.on_first_interest(&STATE_EVENTS, move || {
        if let Some(engine) = weak.upgrade() {
            first_look.lock().look(&*engine);
        }
    });
    runtime.spawn(watch(engine, events.downgrade(), host, known));
}

/// The states last seen, shared by the watcher and the first look of a registration.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Known>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What was last seen of a torrent, and in which pass.
struct Seen {
    state: TorrentState,
    finished: bool,
    pass: u64,
}

/// The states last seen, by id.
#[derive(Default)]
struct Known {
    torrents: HashMap<String, Seen>,
    pass: u64,
    /// A first look was taken for an interest the watcher has not woken for yet.
    fresh: bool,
}

impl Known {
    /// A fresh look, what was seen before forgotten: the start of an interest.
    fn look(&mut self, engine: &dyn TorrentEngine) {
        self.torrents.clear();
        self.update(engine, None);
        self.fresh = true;
    }

    /// Looks at every torrent's state: a known torrent whose state changed, or which
    /// finished, is announced on `events` (none: a fresh look, nothing announced); a new
    /// one is only noted; those gone are forgotten.
    fn update(&mut self, engine: &dyn TorrentEngine, events: Option<&EventBus>) {
        self.pass = self.pass.wrapping_add(1);
        let pass = self.pass;
        let torrents = &mut self.torrents;
        engine.for_each_state(&mut |id, state, finished| {
            let Some(seen) = torrents.get_mut(id) else {
                torrents.insert(
                    id.to_string(),
                    Seen {
                        state,
                        finished,
                        pass,
                    },
                );
                return;
            };
            if let Some(events) = events {
                if seen.state != state {
                    let args = vec![json!(id), json!(state.as_str())];
                    events.emit("TorrentStateChangedEvent", args);
                }
                if finished && !seen.finished {
                    events.emit("TorrentFinishedEvent", vec![json!(id)]);
                }
            }
            *seen = Seen {
                state,
                finished,
                pass,
            };
        });
        torrents.retain(|_, seen| seen.pass == pass);
    }
}

/// The watcher: asleep while nobody wants [`STATE_EVENTS`], comparing once a [`PERIOD`]
/// while someone does.
async fn watch(engine: Arc<dyn TorrentEngine>, bus: WeakEventBus, host: WeakHost, known: Shared) {
    loop {
        if !EventBus::wait_wanted(&bus, &STATE_EVENTS).await {
            return;
        }
        {
            // Taken by the registration that woke us, unless the interest began otherwise
            // (before this task started).
            let mut known = known.lock();
            if !known.fresh {
                known.look(&*engine);
            }
            known.fresh = false;
        }
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let (Some(_host), Some(events)) = (host.upgrade(), bus.upgrade()) else {
                return;
            };
            if !events.wanted(&STATE_EVENTS) {
                break;
            }
            let mut known = known.lock();
            known.update(&*engine, Some(&events));
            known.fresh = false;
        }
        let mut known = known.lock();
        if !known.fresh {
            known.torrents = HashMap::new(); // nothing held while asleep
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use tokio::sync::broadcast;

    use super::*;
    use crate::event::Event;
    use crate::host::PluginHost;
    use crate::service::Core;
    use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
    use crate::torrent::{AddOptions, TorrentError, TorrentInfo, TorrentSource};

    /// An engine of many torrents that counts what is asked of it.
    #[derive(Default)]
    struct Counted {
        torrents: Mutex<Vec<(String, TorrentState, bool)>>,
        /// `TorrentInfo`s built.
        built: AtomicUsize,
        /// Torrents visited by `for_each_state`.
        visited: AtomicUsize,
    }

    impl Counted {
        fn with(n: usize) -> Arc<Counted> {
            let engine = Counted::default();
            *engine.torrents.lock().unwrap() = (0..n)
                .map(|i| (format!("{i:040x}"), TorrentState::Downloading, false))
                .collect();
            Arc::new(engine)
        }

        fn set(&self, i: usize, state: TorrentState, finished: bool) {
            let mut list = self.torrents.lock().unwrap();
            (list[i].1, list[i].2) = (state, finished);
        }

        fn work(&self) -> (usize, usize) {
            (
                self.built.load(Ordering::SeqCst),
                self.visited.load(Ordering::SeqCst),
            )
        }
    }

    #[async_trait::async_trait]
    impl SessionSource for Counted {
        async fn session_status(&self, _: &[StatusKey]) -> Result<SessionStatus, SourceError> {
            Ok(SessionStatus::new(SessionId::new("counted")))
        }
    }

    #[async_trait::async_trait]
    impl TorrentEngine for Counted {
        async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
            Err(TorrentError::Unsupported("no adds".into()))
        }
        fn torrents(&self) -> Vec<TorrentInfo> {
            let list = self.torrents.lock().unwrap();
            self.built.fetch_add(list.len(), Ordering::SeqCst);
            list.iter()
                .map(|(id, state, _)| TorrentInfo::new(id, id, *state))
                .collect()
        }
        fn for_each_state(&self, each: &mut dyn FnMut(&str, TorrentState, bool)) {
            for (id, state, finished) in self.torrents.lock().unwrap().iter() {
                self.visited.fetch_add(1, Ordering::SeqCst);
                each(id, *state, *finished);
            }
        }
        async fn pause(&self, _: &str) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn resume(&self, _: &str) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn remove(&self, _: &str, _: bool) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn connect_peer(&self, _: &str, _: SocketAddr) -> Result<(), TorrentError> {
            Ok(())
        }
        fn download_location(&self) -> PathBuf {
            PathBuf::new()
        }
        fn listen_port(&self) -> Option<u16> {
            None
        }
        fn version(&self) -> String {
            "counted".into()
        }
    }

    /// The next event, waiting at most a minute of the test's (paused) clock.
    async fn next(rx: &mut broadcast::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an event within a minute")
            .expect("the bus is open")
    }

    /// `secs` seconds of the paused clock go by, the watcher running meanwhile.
    async fn pass(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn states_are_watched_only_while_a_client_wants_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Counted::with(1000);
        let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
        let core = Core::with_engine(host, Some(engine.clone())).unwrap();
        let mut rx = core.events().subscribe();

        // Nobody registered (a subscriber alone is not an interest): no work at all.
        pass(600).await;
        assert_eq!(engine.work(), (0, 0));
        // A change nobody watched is not announced later.
        engine.set(0, TorrentState::Paused, false);
        let other = core.events().register(["TorrentAddedEvent"]);
        pass(60).await;
        assert_eq!(engine.work(), (0, 0));

        let interest = core.events().register(["TorrentStateChangedEvent"]);
        pass(3).await;
        let (built, visited) = engine.work();
        assert_eq!(built, 0, "no TorrentInfo built to watch states");
        assert!((1000..=4000).contains(&visited), "{visited} visits in 3 s");
        engine.set(1, TorrentState::Seeding, true);
        let e = next(&mut rx).await;
        assert_eq!(e.name, "TorrentStateChangedEvent");
        assert_eq!(e.args, [json!(format!("{:040x}", 1)), json!("Seeding")]);
        assert_eq!(next(&mut rx).await.name, "TorrentFinishedEvent");

        // The last interest gone, the watcher sleeps again (after at most one more look).
        drop(interest);
        pass(2).await;
        let asleep = engine.work();
        pass(600).await;
        assert_eq!(engine.work(), asleep);
        drop(other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_right_after_the_registration_is_announced() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Counted::with(3);
        let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
        let core = Core::with_engine(host, Some(engine.clone())).unwrap();
        let mut rx = core.events().subscribe();
        pass(5).await; // the watcher asleep

        // No await in between: the watcher has not run since the registration (this
        // runtime has one thread), so only the registration's own first look knows the
        // state before the change.
        let interest = core.events().register(["TorrentStateChangedEvent"]);
        assert_eq!(engine.work(), (0, 3), "the first look, inside register");
        engine.set(2, TorrentState::Paused, false);
        let e = next(&mut rx).await;
        assert_eq!(e.name, "TorrentStateChangedEvent");
        assert_eq!(e.args, [json!(format!("{:040x}", 2)), json!("Paused")]);

        // Gone and back between two of the watcher's looks: a new first look, and the
        // change after it announced.
        drop(interest);
        let interest = core.events().register(["TorrentStateChangedEvent"]);
        engine.set(0, TorrentState::Seeding, false);
        let e = next(&mut rx).await;
        assert_eq!(e.args, [json!(format!("{:040x}", 0)), json!("Seeding")]);
        drop(interest);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_ends_with_the_bus() {
        let engine = Counted::with(3);
        let bus = EventBus::new();
        let dir = tempfile::tempdir().unwrap();
        let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
        let known = Shared::default();
        let task = tokio::spawn(watch(
            engine.clone(),
            bus.downgrade(),
            host.downgrade(),
            known,
        ));
        pass(5).await;
        assert!(!task.is_finished());
        drop(bus);
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the watcher ended")
            .unwrap();
    }
}
