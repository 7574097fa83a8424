//! `GET /events`: server-sent events, one `snapshot` event (the Stats snapshot as JSON) at
//! connect and after every poll, change or disable; a keep-alive comment every 15 s. The
//! stream ends when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::WebState;
use crate::stats::Snapshot;

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
    let stopped = state.stopped.clone();
    let events = stream::unfold(
        (snapshots, stopped),
        |(mut snapshots, mut stopped): (watch::Receiver<Snapshot>, watch::Receiver<bool>)| async move {
            let changed = tokio::select! {
                changed = snapshots.changed() => changed.is_ok(),
                _ = stopped.wait_for(|s| *s) => false,
            };
            if !changed {
                return None;
            }
            let event = event(&snapshots.borrow_and_update());
            Some((Ok::<_, Infallible>(event), (snapshots, stopped)))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event(snapshot: &Snapshot) -> Event {
    let data = serde_json::to_string(snapshot).unwrap_or_else(|_| "null".into());
    Event::default().event("snapshot").data(data)
}
