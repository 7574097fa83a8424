//! `GET /events`: server-sent events, one `snapshot` event (the Stats snapshot as JSON) at
//! connect and after every poll, change or disable; the bus events of [`FORWARDED`], each
//! as an event of its Deluge class name whose data is its arguments as a JSON list
//! (`QuotaThresholdEvent`: `["name", 80]`); a keep-alive comment every 15 s. The stream
//! ends when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::{broadcast, watch};

use super::WebState;
use crate::event::Event as BusEvent;
use crate::stats::Snapshot;

/// The bus events the page is sent: a quota's threshold crossed (feature `ledger`).
pub const FORWARDED: &[&str] = &["QuotaThresholdEvent"];

/// What the stream waits on: snapshots, the event bus, the server's stop signal.
struct Sources {
    snapshots: watch::Receiver<Snapshot>,
    bus: broadcast::Receiver<BusEvent>,
    stopped: watch::Receiver<bool>,
}

/// The handler: needs a session.
pub(super) async fn handle(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if state.logins.get(&headers).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "Not authenticated: log in through /json first",
        )
            .into_response();
    }
    let mut snapshots = state.stats.watch();
    snapshots.mark_changed(); // the current one first
    let sources = Sources {
        snapshots,
        bus: state.core.events().subscribe(),
        stopped: state.stopped.clone(),
    };
    let events = stream::unfold(sources, |mut s| async move {
        let event = next(&mut s).await?;
        Some((Ok::<_, Infallible>(event), s))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next event to send; `None` once the server stops or the snapshots end.
async fn next(s: &mut Sources) -> Option<Event> {
    let mut bus_open = true;
    loop {
        tokio::select! {
            changed = s.snapshots.changed() => {
                changed.ok()?;
                return Some(snapshot_event(&s.snapshots.borrow_and_update()));
            }
            received = s.bus.recv(), if bus_open => match received {
                Ok(e) => {
                    if let Some(event) = forwarded(&e) {
                        return Some(event);
                    }
                }
                // Too slow a reader misses some: the next snapshot tells the state anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bus_open = false,
            },
            _ = s.stopped.wait_for(|stopped| *stopped) => return None,
        }
    }
}

fn snapshot_event(snapshot: &Snapshot) -> Event {
    let data = serde_json::to_string(snapshot).unwrap_or_else(|_| "null".into());
    Event::default().event("snapshot").data(data)
}

/// The (name, data) of the event sent for bus event `e`, if it is one of [`FORWARDED`].
fn forwarded_parts(e: &BusEvent) -> Option<(&str, String)> {
    FORWARDED.contains(&e.name.as_str()).then(|| {
        let data = serde_json::to_string(&e.args).unwrap_or_else(|_| "[]".into());
        (e.name.as_str(), data)
    })
}

fn forwarded(e: &BusEvent) -> Option<Event> {
    forwarded_parts(e).map(|(name, data)| Event::default().event(name).data(data))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{forwarded_parts, BusEvent};

    fn bus(name: &str, args: Vec<serde_json::Value>) -> BusEvent {
        BusEvent {
            name: name.into(),
            args,
        }
    }

    #[test]
    fn a_quota_threshold_is_forwarded_with_its_arguments_as_a_list() {
        let e = bus("QuotaThresholdEvent", vec![json!("monthly cap"), json!(80)]);
        assert_eq!(
            forwarded_parts(&e),
            Some(("QuotaThresholdEvent", r#"["monthly cap",80]"#.to_string()))
        );
    }

    #[test]
    fn other_bus_events_are_not_forwarded() {
        for name in [
            "PluginEnabledEvent",
            "PluginDisabledEvent",
            "quotathresholdevent",
        ] {
            assert_eq!(forwarded_parts(&bus(name, vec![json!("Stats")])), None);
        }
    }
}
