//! Server-Sent Events streams: a job's log (replayed from the start or from `Last-Event-ID`,
//! then live, ending with the job) and the caller's server events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use spawnit_model::JobEvent;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::events::EventBus;
use crate::jobs::Job;

type SseStream =
    Sse<axum::response::sse::KeepAliveStream<std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>>>;

fn job_event(index: usize, event: &JobEvent) -> Event {
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "message".into());
    Event::default().id(index.to_string()).event(name).json_data(event).unwrap_or_default()
}

/// A job's events from index `from` on, then live until its `finished` event.
pub fn job_stream(job: Arc<Job>, from: usize) -> SseStream {
    let (past, live) = job.events_from(from);
    let next = past.last().map(|(i, _)| i + 1).unwrap_or(from);
    let ended = past.iter().any(|(_, e)| matches!(e, JobEvent::Finished { .. }));
    let replay = stream::iter(past.into_iter().map(|(i, e)| Ok(job_event(i, &e))));
    let live = match (live, ended) {
        (Some(rx), false) => stream::unfold((rx, next, false, job), |(mut rx, mut next, done, job)| async move {
            if done {
                return None;
            }
            loop {
                match rx.recv().await {
                    Ok((i, e)) if i >= next => {
                        next = i + 1;
                        let finished = matches!(e, JobEvent::Finished { .. });
                        return Some((Ok(job_event(i, &e)), (rx, next, finished, job)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        // Catch up from the log itself.
                        let (missed, _) = job.events_from(next);
                        if let Some((i, e)) = missed.into_iter().next() {
                            next = i + 1;
                            let finished = matches!(e, JobEvent::Finished { .. });
                            return Some((Ok(job_event(i, &e)), (rx, next, finished, job)));
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
        .boxed(),
        _ => stream::empty().boxed(),
    };
    Sse::new(replay.chain(live).boxed()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The server events the caller may see, live.
pub fn events_stream(bus: &EventBus, caller: Caller) -> SseStream {
    let rx = bus.subscribe();
    let s = stream::unfold((rx, caller), |(mut rx, caller)| async move {
        loop {
            match rx.recv().await {
                Ok(event) if caller.sees(event.client()) => {
                    let e = Event::default().event(event.name()).json_data(&event).unwrap_or_default();
                    return Some((Ok(e), (rx, caller)));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(s.boxed()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
