//! A scalable service from the web UI in a real headless Chromium (issue 11, "done when"): a new
//! user signs in → catalog → configures `web-app` with 3 replicas (at least 3, so that the
//! autoscaler leaves them) of the stand-in app, sticky sessions on → sees the plan (three
//! replicas and the load balancer) → applies → the job succeeds → opens the load balancer's
//! endpoint: every reload names the same replica (the `spawnit_lb` cookie), and a separate
//! browser session with its own cookie jar (a new WebDriver session: a new Chromium profile,
//! like a private window) reaches another replica → destroy. Screenshots go to
//! `target/ui-screenshots/scale-*.png`.

use crate::common;

use std::time::{Duration, Instant};

use common::browser::*;
use common::*;
use fantoccini::{Client, Locator};
use spawnit_server::accounts::Role;

const PASSWORD: &str = "browser-scale-password";
/// The stand-in app (built by scripts/test-images.sh).
const IMAGE: &str = "spawnit-test/webapp:1";
/// The sticky-session cookie Caddy sets.
const STICKY_COOKIE: &str = "spawnit_lb";
/// Reloads that must all land on the same replica.
const RELOADS: usize = 8;
/// Separate sessions tried, at most, to reach another replica (each first request picks a
/// replica at random: all of them landing on the first one has odds of (1/3)^8).
const OTHER_SESSIONS: usize = 8;

fn images_required() {
    for image in [IMAGE, "caddy:2"] {
        let found = docker(&["image", "ls", "-q", image]);
        assert!(!found.trim().is_empty(), "test image {image} is missing: run scripts/test-images.sh");
    }
}

/// Opens (or, with `reload`, reloads) the load balancer's page until it shows an answer of the
/// app; returns the replica it names. Chromium shows an error page instead when Docker changed
/// the host's network interfaces during the load (ERR_NETWORK_CHANGED); then it loads again.
async fn replica_shown(c: &Client, url: &str, reload: bool, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = true;
    let mut last = String::new();
    while Instant::now() < deadline {
        let loaded = if reload && first { c.refresh().await } else { c.goto(url).await };
        first = false;
        if loaded.is_ok()
            && let Ok(body) = c.find(Locator::Css("body")).await
            && let Ok(text) = body.text().await
        {
            if let Some(host) = text.lines().find_map(|l| l.strip_prefix("Hostname:")) {
                assert!(text.contains("Version: 1"), "{what}: not the deployed version: {text}");
                return host.trim().to_owned();
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shot(c, &format!("scale-failed-{}", what.replace(' ', "-"))).await;
    panic!("{what}: {url} never showed an answer of the app; last page: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_deploys_web_app_with_three_sticky_replicas() {
    let t = TestServer::start(|_| {}).await;
    images_required();
    t.user("newcomer", &t.client, Role::Member, PASSWORD).await;
    let driver = chromedriver().await;
    let c = browser(&driver).await;

    // A new user signs in and finds the template in the catalog.
    c.goto(&t.url("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    fill(&c, "#user", "newcomer").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "main form button[type=submit]").await;
    wait_text(&c, "main h1", "dashboard", Duration::from_secs(10), |t| t == "My services").await;
    click(&c, "a[href='/catalog']").await;
    wait_text(&c, "main h1", "catalog", Duration::from_secs(10), |t| t == "Catalog").await;
    fill(&c, "#search", "scalable").await;
    shot(&c, "scale-01-catalog").await;
    click(&c, "a[href='/catalog/web-app']").await;
    wait_text(&c, "main h1", "configure", Duration::from_secs(10), |t| t.contains("Configure")).await;

    // The form: the image, 3 replicas, sticky sessions on; the published port left to SpawnIt.
    fill(&c, "#f-name", "shop").await;
    fill(&c, "#p-image", IMAGE).await;
    fill(&c, "#p-replicas", "3").await;
    // At least 3 too: idle replicas would otherwise be scaled in by the autoscaler (to the
    // template's minimum of 1), taking a session's replica away in the middle of the test.
    fill(&c, "#p-min_replicas", "3").await;
    let sticky = c.find(Locator::Css("#p-sticky")).await.expect("a sticky sessions box");
    if sticky.prop("checked").await.unwrap().as_deref() != Some("true") {
        sticky.click().await.unwrap();
    }
    assert_eq!(sticky.prop("checked").await.unwrap().as_deref(), Some("true"), "sticky sessions are on");
    let http_port = c.find(Locator::Css("#p-http_port")).await.unwrap();
    assert_eq!(http_port.prop("value").await.unwrap().as_deref(), Some(""), "the published port starts empty");
    // A port of its own: left empty, SpawnIt picks 8080 when free, which other tests on this
    // host may take as soon as this service lets it go.
    let port = free_port();
    fill(&c, "#p-http_port", &port.to_string()).await;
    shot(&c, "scale-02-configure").await;
    click(&c, "button[value=plan]").await;
    wait_text(&c, "main h1", "service page", Duration::from_secs(10), |t| t.starts_with("shop")).await;
    let (status, spec) = t.get("/api/services/shop").await;
    assert_eq!(status, 200, "{spec}");
    assert_eq!(spec["params"]["replicas"], 3, "{spec}");
    assert_eq!(spec["params"]["min_replicas"], 3, "{spec}");
    assert_eq!(spec["params"]["sticky"], true, "{spec}");
    assert_eq!(spec["params"]["image"], IMAGE, "{spec}");
    assert_eq!(spec["params"]["http_port"], port, "{spec}");

    // The plan: three replicas and the load balancer.
    network_apply_from_page(&c, &t, "shop").await;
    let page = t.url("/services/shop");
    let recover = Some(page.as_str());
    let plan = wait_text_at(&c, "#plan", "plan of the replicas", Duration::from_secs(30), recover, |t| {
        t.contains("container.app[2]") && t.contains("load_balancer.")
    })
    .await;
    for replica in ["container.app[0]", "container.app[1]", "container.app[2]"] {
        assert!(plan.contains(replica), "{replica} is not in the plan: {plan}");
    }
    shot(&c, "scale-03-planned").await;

    // Apply; the job succeeds and the service is compliant.
    let job = confirm_job(&c, &t, "shop", "details.confirm:nth-of-type(1)", "#confirm-apply", "apply").await;
    let page = t.url(&format!("/services/shop?job={job}"));
    let recover = Some(page.as_str());
    let log =
        wait_text_at(&c, "#log", "apply finished", Duration::from_secs(180), recover, |t| t.contains("finished:"))
            .await;
    assert!(log.contains("finished: succeeded"), "the apply did not succeed: {log}");
    let (_, record) = t.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    wait_text_at(&c, "main h1 .badge", "compliant badge", Duration::from_secs(30), recover, |t| t == "compliant").await;
    // The page again: its Replicas section lists the three running replicas.
    let _ = c.goto(&t.url("/services/shop")).await;
    let page = t.url("/services/shop");
    let replicas = wait_text_at(&c, "#replicas", "running replicas", Duration::from_secs(30), Some(&page), |t| {
        t.contains("container.app[2]") && t.matches("running").count() >= 3
    })
    .await;
    assert!(replicas.contains("app: 3 replicas"), "{replicas}");
    shot(&c, "scale-04-applied").await;
    let endpoint = c.find(Locator::Css("ul.endpoints a")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"), "the load balancer's endpoint");

    // The endpoint in the browser: the same replica on every reload, thanks to the cookie.
    let first = replica_shown(&c, &endpoint, false, "first visit").await;
    let cookie = c.get_named_cookie(STICKY_COOKIE).await.expect("the load balancer set its sticky cookie");
    assert!(!cookie.value().is_empty());
    shot(&c, "scale-05-endpoint").await;
    for i in 0..RELOADS {
        let again = replica_shown(&c, &endpoint, true, &format!("reload {i}")).await;
        assert_eq!(again, first, "reload {i} reached another replica although the cookie was sent");
    }
    shot(&c, "scale-06-endpoint-reloaded").await;

    // Separate sessions (own cookie jars) reach another replica at least once.
    let mut others = Vec::new();
    for i in 0..OTHER_SESSIONS {
        let private = browser(&driver).await;
        assert!(private.get_named_cookie(STICKY_COOKIE).await.is_err(), "a new session already has the sticky cookie");
        let host = replica_shown(&private, &endpoint, false, &format!("separate session {i}")).await;
        if i == 0 || host != first {
            shot(&private, &format!("scale-07-separate-session-{i}")).await;
        }
        private.close().await.unwrap();
        let done = host != first;
        others.push(host);
        if done {
            break;
        }
    }
    assert!(
        others.iter().any(|h| *h != first),
        "{} separate sessions all reached replica {first}: {others:?}",
        others.len()
    );
    // The first session is still held on its replica.
    assert_eq!(replica_shown(&c, &endpoint, false, "back in the first session").await, first);

    // Destroy from the service page.
    // (The confirmation opens its details itself, and loads the page again if Chromium aborted it.)
    let _ = c.goto(&t.url("/services/shop")).await;
    let job = confirm_job(&c, &t, "shop", "details.confirm:nth-of-type(2)", "#confirm-destroy", "destroy").await;
    // The job's end is read from the API, then the page is loaded again and must show the whole
    // log. (Here Chromium's live log of the destroy lagged by up to a minute, and so did loading
    // the page, while the server answered the same requests from reqwest at once.)
    let record = t.job_wait(&serde_json::json!({ "id": job })).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let page = t.url(&format!("/services/shop?job={job}"));
    let _ = c.goto(&page).await;
    let recover = Some(page.as_str());
    let log =
        wait_text_at(&c, "#log", "destroy finished", Duration::from_secs(180), recover, |t| t.contains("finished:"))
            .await;
    assert!(log.contains("finished: succeeded"), "the destroy did not succeed: {log}");
    shot(&c, "scale-08-destroyed").await;
    if let Ok(answer) = reqwest::get(&endpoint).await {
        let text = answer.text().await.unwrap_or_default();
        assert!(
            !others.iter().chain([&first]).any(|h| text.contains(h.as_str())),
            "a replica still answers after the destroy: {text}"
        );
    }
    let label = format!("label=spawnit.client={}", t.client);
    let left = docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}} {{.Status}}"]);
    if !left.trim().is_empty() {
        let jobs = t.get("/api/jobs").await.1;
        let jobs: Vec<String> = jobs["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| format!("{} {} by {} at {}", j["kind"], j["status"], j["requested_by"], j["created_at"]))
            .collect();
        panic!("containers left after the destroy:\n{left}\njobs, newest first:\n{}", jobs.join("\n"));
    }

    c.close().await.unwrap();
    drop(driver);
}
