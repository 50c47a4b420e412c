//! Browser helpers for the web UI tests: chromedriver and a headless Chromium session over
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by scripts/test.sh),
//! screenshots under `target/ui-screenshots/`, waiting for a text, filling and clicking, and
//! confirming a job on a service page.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::{TestServer, free_port};

pub fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Driver {
    child: tokio::process::Child,
    pub url: String,
}

impl Drop for Driver {
    /// Ends chromedriver and the Chromium it started (its own process group), even when the
    /// test panicked before closing the session.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}

pub async fn chromedriver() -> Driver {
    let port = free_port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromedriver ({e}): run scripts/test.sh, which installs chromium and chromium-driver")
        });
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

pub async fn browser(driver: &Driver) -> Client {
    // fantoccini's HTTPS stack brings two rustls back ends: pick ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run scripts/test.sh, which installs chromium and chromium-driver"
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]}),
    );
    // The console, read back by `csp_violations`.
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::rustls().expect("rustls").capabilities(caps).connect(&driver.url).await.expect("a Chromium session")
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the element's text satisfies `ok`; returns the text.
pub async fn wait_text(c: &Client, css: &str, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    wait_text_at(c, css, what, timeout, None, ok).await
}

/// Like [`wait_text`]; when Chromium shows a network error page (it aborts loads when Docker
/// adds or removes network interfaces: ERR_NETWORK_CHANGED), goes to `recover`.
pub async fn wait_text_at(
    c: &Client,
    css: &str,
    what: &str,
    timeout: Duration,
    recover: Option<&str>,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(url) = recover {
            if c.find(Locator::Css("header.top")).await.is_err() {
                let _ = c.goto(url).await;
            }
        }
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
    panic!("{what}: `{css}` never matched within {timeout:?}; last text: {last:?}");
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
}

/// Opens a confirmation on the page of `service`, confirms, and returns the id of the job it
/// started. Chromium aborts a submission when the host's network interfaces change
/// (ERR_NETWORK_CHANGED: Docker creating or removing networks and containers, ours or another
/// test's); then nothing was submitted, and the confirmation is done again.
pub async fn confirm_job(c: &Client, t: &TestServer, service: &str, details: &str, button: &str, kind: &str) -> String {
    let known: Vec<String> = t.get("/api/jobs").await.1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    for attempt in 0..5 {
        if attempt > 0 {
            let _ = c.goto(&t.url(&format!("/services/{service}"))).await;
        }
        let summary = format!("#plan {details} summary");
        let open = c.find(Locator::Css(&format!("#plan {details}"))).await;
        if let Ok(d) = open {
            if d.attr("open").await.ok().flatten().is_none() {
                if let Ok(e) = c.find(Locator::Css(&summary)).await {
                    let _ = e.click().await;
                }
            }
        }
        if let Ok(b) = c.find(Locator::Css(button)).await {
            let _ = b.click().await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let jobs = t.get("/api/jobs").await.1;
            let new = jobs["jobs"].as_array().unwrap().iter().find(|j| {
                j["kind"] == kind
                    && j["target"]["name"] == service
                    && !known.contains(&j["id"].as_str().unwrap().to_owned())
            });
            if let Some(j) = new {
                return j["id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    shot(c, &format!("failed-{kind}-submit")).await;
    panic!("the {kind} confirmation never started a job");
}

/// When the service page says its network is not applied yet, applies it from the page and
/// waits until the page no longer says so.
pub async fn network_apply_from_page(c: &Client, t: &TestServer, service: &str) {
    if c.find(Locator::Css(".notice form button")).await.is_err() {
        return;
    }
    click(c, ".notice form button").await;
    let page = t.url(&format!("/services/{service}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A reload Chromium aborted (ERR_NETWORK_CHANGED while Docker makes the network)
        // is no page at all: go to the service page again.
        if c.goto(&page).await.is_ok()
            && c.find(Locator::Css("header.top")).await.is_ok()
            && c.find(Locator::Css(".notice form button")).await.is_err()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the network never became ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
