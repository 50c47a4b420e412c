//! Server-Sent Events streams: a job's log (replayed from the start or from `Last-Event-ID`,
//! then live, ending with the job) and the caller's server events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use spawnit_model::JobEvent;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::caller::Caller;
use crate::events::EventBus;
use crate::jobs::Job;
use crate::metrics::Metrics;

type SseStream =
    Sse<axum::response::sse::KeepAliveStream<std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>>>;

fn job_event(index: usize, event: &JobEvent) -> Event {
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "message".into());
    Event::default().id(index.to_string()).event(name).json_data(event).unwrap_or_default()
}

/// A job's events from index `from` on, then live until its `finished` event. A reader that
/// falls behind the live channel gets everything it missed from the job's log, in order.
pub fn job_stream(job: Arc<Job>, from: usize, metrics: Arc<Metrics>) -> SseStream {
    let (past, live) = job.events_from(from);
    let next = past.last().map(|(i, _)| i + 1).unwrap_or(from);
    let ended = past.iter().any(|(_, e)| matches!(e, JobEvent::Finished { .. }));
    let replay = stream::iter(past.into_iter().map(|(i, e)| Ok(job_event(i, &e))));
    let live = match (live, ended) {
        (Some(rx), false) => {
            let follow = Follow { rx, next, missed: VecDeque::new(), done: false, job, metrics };
            stream::unfold(follow, |mut f| async move {
                let (i, e) = f.next_event().await?;
                Some((Ok(job_event(i, &e)), f))
            })
            .boxed()
        }
        _ => stream::empty().boxed(),
    };
    Sse::new(replay.chain(live).boxed()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A reader following a job live.
struct Follow {
    rx: broadcast::Receiver<(usize, JobEvent)>,
    /// The index of the next event to send.
    next: usize,
    /// Events read back from the log after a lag, to send before anything live.
    missed: VecDeque<(usize, JobEvent)>,
    done: bool,
    job: Arc<Job>,
    metrics: Arc<Metrics>,
}

impl Follow {
    /// The next event in order, or `None` after the job's `finished` event.
    async fn next_event(&mut self) -> Option<(usize, JobEvent)> {
        if self.done {
            return None;
        }
        loop {
            if let Some((i, e)) = self.missed.pop_front() {
                return Some(self.sent(i, e));
            }
            match self.rx.recv().await {
                Ok((i, e)) if i == self.next => return Some(self.sent(i, e)),
                // Already sent (read back from the log after a lag).
                Ok((i, _)) if i < self.next => continue,
                // A gap the channel did not report: fill it from the log.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    self.metrics.sse_lagged();
                    self.missed = self.job.events_from(self.next).0.into();
                }
                Err(RecvError::Closed) => {
                    // The job is gone from memory: send what its log still holds after `next`.
                    self.missed = self.job.events_from(self.next).0.into();
                    if self.missed.is_empty() {
                        return None;
                    }
                }
            }
        }
    }

    fn sent(&mut self, i: usize, e: JobEvent) -> (usize, JobEvent) {
        self.next = i + 1;
        self.done = matches!(e, JobEvent::Finished { .. });
        (i, e)
    }
}

/// The server events the caller may see, live.
pub fn events_stream(bus: &EventBus, caller: Caller) -> SseStream {
    let rx = bus.subscribe();
    let s = stream::unfold((rx, caller), |(mut rx, caller)| async move {
        loop {
            match rx.recv().await {
                Ok(event) if event.client().map_or(caller.is_admin(), |c| caller.sees(c)) => {
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
