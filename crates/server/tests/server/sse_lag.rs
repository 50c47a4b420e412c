//! A job's event stream that falls behind loses nothing, on the real server, real HTTP and the
//! real Docker engine. The job's live channel holds one event (`JobsConfig::live_capacity`), and
//! server and reader share one thread, so a burst of events (an apply of `nginx`, whose image
//! cannot be pulled here: the plan, two starts at once, then a failure, a skip and the end)
//! always overtakes the reader. The stream must still deliver every event id, in order.

use crate::common;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::*;
use futures::FutureExt;
use serde_json::json;
use spawnit_model::{Id, Owner, OwnerKey};
use spawnit_store::Store;

/// The `spawnit_sse_lagged_total` counter of the server's metrics.
async fn lagged_total(t: &TestServer) -> u64 {
    let text = t.http.get(t.url("/metrics")).bearer_auth(&t.admin).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("spawnit_sse_lagged_total "))
        .unwrap_or_else(|| panic!("no lag counter in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Ids and names of a job's events as one SSE stream delivers them, up to `finished`.
async fn read_all(reader: &mut SseReader) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    while let Some(e) = reader.next(Duration::from_secs(60)).await {
        let id = e.id.as_deref().expect("every job event has an id").parse().expect("a number");
        let finished = e.event == "finished";
        out.push((id, e.event));
        if finished {
            break;
        }
    }
    out
}

async fn lagging_reader_gets_every_event(t: &TestServer) {
    let port = free_port();
    let (status, body) =
        t.post("/api/services", json!({"template": "nginx", "name": "site", "params": {"port": port}})).await;
    assert_eq!(status, 201, "{body}");
    let network = t.post("/api/networks/default/apply", json!({})).await.1;
    assert_eq!(t.job_wait(&network).await["status"], "succeeded");

    // Hold the service's lock, as another SpawnIt would, so the job waits with the reader live.
    let store = Store::open_local(t.dir.path()).unwrap();
    let key = OwnerKey { client: Id::parse(&t.client).unwrap(), owner: Owner::Service(Id::parse("site").unwrap()) };
    let lagged_before = lagged_total(t).await;
    let mut tries = 0;
    loop {
        tries += 1;
        let lock = store.lock_acquire(&key, "test-holder", "apply", Duration::from_secs(60)).await.unwrap();
        let (status, job) = t.post("/api/services/site/apply", json!({})).await;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        let mut live = t.sse(&format!("/api/jobs/{id}/events"), None).await;
        // The job says it waits for the lock: from here on the reader follows it live.
        let (first, _) = live
            .until(Duration::from_secs(30), "waiting message", |e| {
                e.data["text"].as_str().is_some_and(|t| t.contains("waiting for the lock"))
            })
            .await;
        lock.release().await.unwrap();
        let mut got = vec![(first.id.unwrap().parse::<usize>().unwrap(), first.event)];
        got.extend(read_all(&mut live).await);
        let record = t.job_wait(&job).await;
        assert_eq!(record["status"], "failed", "the pull fails here: {record}");

        // The whole log, replayed from the store of the finished job.
        let mut replay = t.sse(&format!("/api/jobs/{id}/events"), None).await;
        let all = read_all(&mut replay).await;
        assert!(all.len() >= 6, "a burst of events: {all:?}");
        assert_eq!(all.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..all.len()).collect::<Vec<_>>());
        let from = got[0].0;
        assert_eq!(got, all[from..].to_vec(), "the live reader got every event after {from}, in order");

        if lagged_total(t).await > lagged_before {
            break;
        }
        assert!(tries < 5, "the reader never fell behind in {tries} applies");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_reader_that_falls_behind_gets_every_event_from_the_log() {
    let mut t = TestServer::start(|c| c.jobs.live_capacity = 1).await;
    let outcome = AssertUnwindSafe(lagging_reader_gets_every_event(&t)).catch_unwind().await;
    // One thread: stop the server here (the common Drop would block on this thread).
    if let Some(server) = t.server.take() {
        server.run_until(async {}).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
