//! The web UI end to end in a real headless Chromium, driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, installed by scripts/test.sh): sign in → catalog →
//! configure `hello` with a bad value (the message is next to the field) → fix it → plan →
//! apply → the live log streams → the status becomes compliant → the endpoint answers →
//! destroy. A screenshot of every page is saved under `target/ui-screenshots/`.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::browser::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use spawnit_server::accounts::Role;

const PASSWORD: &str = "browser-test-password";

/// The Content-Security-Policy violations Chromium reported in its console since the last
/// call (chromedriver's log endpoint hands each entry out once).
async fn csp_violations(c: &Client, driver: &Driver) -> Vec<String> {
    let id = c.session_id().await.unwrap().expect("a WebDriver session");
    let resp = reqwest::Client::new()
        .post(format!("{}/session/{id}/se/log", driver.url))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "chromedriver gives no console log: {}", resp.text().await.unwrap());
    let log: serde_json::Value = resp.json().await.unwrap();
    log["value"]
        .as_array()
        .expect("console entries")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("Content Security Policy"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_sign_in_configure_plan_apply_watch_and_destroy_hello() {
    let t = TestServer::start(|_| {}).await;
    t.user("walt", &t.client, Role::Member, PASSWORD).await;
    t.user("boss", "default", Role::Admin, PASSWORD).await;
    let driver = chromedriver().await;
    let c = browser(&driver).await;

    // Sign in (a wrong password first: a readable message on the page).
    c.goto(&t.url("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    shot(&c, "01-sign-in").await;
    fill(&c, "#user", "walt").await;
    fill(&c, "#password", "not-the-password").await;
    click(&c, "form button[type=submit]").await;
    wait_text(&c, "#login-error", "wrong password message", Duration::from_secs(10), |t| {
        t.contains("Wrong user name or password")
    })
    .await;
    shot(&c, "02-sign-in-error").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "main form button[type=submit]").await;
    wait_text(&c, "main h1", "dashboard", Duration::from_secs(10), |t| t == "My services").await;
    shot(&c, "03-dashboard-empty").await;

    // Catalog: search filters the cards.
    click(&c, "a[href='/catalog']").await;
    wait_text(&c, "main h1", "catalog", Duration::from_secs(10), |t| t == "Catalog").await;
    shot(&c, "04-catalog").await;
    fill(&c, "#search", "echo").await;
    let visible = c
        .execute("return Array.from(document.querySelectorAll('[data-text]')).filter(e => !e.hidden).length", vec![])
        .await
        .unwrap();
    assert_eq!(visible, json!(1), "the search shows only hello");
    shot(&c, "05-catalog-search").await;
    click(&c, "a[href='/catalog/hello']").await;
    wait_text(&c, "main h1", "configure", Duration::from_secs(10), |t| t.contains("Configure")).await;
    shot(&c, "06-configure").await;

    // The port starts empty: SpawnIt picks a free one unless the user gives one.
    let port_input = c.find(Locator::Css("#p-port")).await.unwrap();
    assert_eq!(port_input.attr("placeholder").await.unwrap().as_deref(), Some("a free port"));
    assert_eq!(port_input.prop("value").await.unwrap().as_deref(), Some(""));

    // A bad port: the message is next to the field, and nothing is created.
    fill(&c, "#f-name", "web").await;
    fill(&c, "#p-message", "Hello from the browser test").await;
    fill(&c, "#p-port", "80").await;
    click(&c, "button[value=plan]").await;
    let msg = wait_text(&c, "#port-error", "port error", Duration::from_secs(10), |t| !t.is_empty()).await;
    assert!(msg.contains("1024"), "{msg}");
    let described = c.find(Locator::Css("#p-port")).await.unwrap().attr("aria-describedby").await.unwrap().unwrap();
    assert!(described.contains("port-error"), "the message is tied to its field");
    shot(&c, "07-configure-error").await;
    let (status, _) = t.get("/api/services/web").await;
    assert_eq!(status, 404, "a refused form created the service");

    // Fixed by leaving the port empty: save and plan; the chosen port is shown.
    fill(&c, "#p-port", "").await;
    click(&c, "button[value=plan]").await;
    wait_text(&c, "main h1", "service page", Duration::from_secs(10), |t| t.starts_with("web")).await;
    let port = t.get("/api/services/web").await.1["params"]["port"].as_u64().expect("a chosen port");
    let port = u16::try_from(port).unwrap();
    let shown = c.find(Locator::Css("dl.params")).await.unwrap().text().await.unwrap();
    assert!(shown.contains(&port.to_string()), "the chosen port is on the page: {shown}");
    wait_text(&c, "#log", "plan log", Duration::from_secs(30), |t| t.contains("finished:")).await;
    shot(&c, "08-service-plan").await;

    // The network is not ready: apply it from the page.
    network_apply_from_page(&c, &t, "web").await;
    let page = t.url("/services/web");
    let recover = Some(page.as_str());
    let plan =
        wait_text_at(&c, "#plan", "plan list", Duration::from_secs(10), recover, |t| t.contains("container.echo"))
            .await;
    assert!(plan.to_lowercase().contains("create"), "{plan}");
    // The dependency graph is an inline SVG with a box per resource.
    let boxes = c.find_all(Locator::Css("svg.graph g.node")).await.unwrap();
    assert!(boxes.len() >= 2, "graph nodes: {}", boxes.len());
    shot(&c, "09-service-planned").await;

    // Apply, with its confirmation; the live log streams; the status becomes compliant.
    let job = confirm_job(&c, &t, "web", "details.confirm:nth-of-type(1)", "#confirm-apply", "apply").await;
    let page = t.url(&format!("/services/web?job={job}"));
    let recover = Some(page.as_str());
    wait_text_at(&c, "#log", "live apply log", Duration::from_secs(60), recover, |t| t.contains("container.echo"))
        .await;
    shot(&c, "10-apply-log").await;
    wait_text_at(&c, "#log", "apply finished", Duration::from_secs(120), recover, |t| {
        t.contains("finished: succeeded")
    })
    .await;
    wait_text_at(&c, "main h1 .badge", "compliant badge", Duration::from_secs(30), recover, |t| t == "compliant").await;
    wait_text_at(&c, "#plan", "empty plan after apply", Duration::from_secs(30), recover, |t| {
        t.contains("Nothing to do")
    })
    .await;
    shot(&c, "11-service-compliant").await;
    let link = c.find(Locator::Css("ul.endpoints a")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert_eq!(link, format!("http://127.0.0.1:{port}"));
    assert!(http_text(port).await.contains("Hello from the browser test"));

    // The dashboard lists it, compliant; other pages render.
    c.goto(&t.url("/")).await.unwrap();
    wait_text(&c, "#services", "dashboard list", Duration::from_secs(10), |t| {
        t.contains("web") && t.contains("compliant")
    })
    .await;
    shot(&c, "12-dashboard").await;
    c.goto(&t.url("/networks")).await.unwrap();
    wait_text(&c, "main h1", "networks", Duration::from_secs(10), |t| t.starts_with("Networks")).await;
    shot(&c, "13-networks").await;
    c.goto(&t.url("/tokens")).await.unwrap();
    fill(&c, "#token-name", "browser").await;
    click(&c, "main form.inline button").await;
    wait_text(&c, "#new-token", "new token", Duration::from_secs(10), |t| t.starts_with("spawnit_")).await;
    shot(&c, "14-tokens").await;

    // Destroy, with its confirmation.
    c.goto(&t.url("/services/web")).await.unwrap();
    click(&c, "#plan details.confirm:nth-of-type(2) summary").await;
    shot(&c, "15-destroy-confirm").await;
    let job = confirm_job(&c, &t, "web", "details.confirm:nth-of-type(2)", "#confirm-destroy", "destroy").await;
    let page = t.url(&format!("/services/web?job={job}"));
    let recover = Some(page.as_str());
    wait_text_at(&c, "#log", "destroy finished", Duration::from_secs(120), recover, |t| {
        t.contains("finished: succeeded")
    })
    .await;
    wait_text_at(&c, "main h1 .badge", "drifted after destroy", Duration::from_secs(30), recover, |t| t == "drifted")
        .await;
    wait_text_at(&c, "#plan", "plan to create again after destroy", Duration::from_secs(30), recover, |t| {
        t.to_lowercase().contains("create container.echo")
    })
    .await;
    shot(&c, "16-destroyed").await;
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/")).await.is_err(), "the endpoint still answers");

    // On a phone-sized window the catalog and the service page stay readable.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&t.url("/catalog")).await.unwrap();
    shot(&c, "17-catalog-phone").await;
    c.goto(&t.url("/services/web")).await.unwrap();
    shot(&c, "18-service-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Nothing in the flow so far broke the Content-Security-Policy.
    let mut violations = csp_violations(&c, &driver).await;

    // Sign out; the admin sees users, clients, every service and the audit log.
    click(&c, "form.signout button").await;
    wait_text(&c, "main h1", "signed out", Duration::from_secs(10), |t| t == "Sign in").await;
    fill(&c, "#user", "boss").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "main form button[type=submit]").await;
    wait_text(&c, "main h1", "admin dashboard", Duration::from_secs(10), |t| t == "My services").await;
    c.goto(&t.url("/admin")).await.unwrap();
    let audit = wait_text(&c, "#audit", "audit log", Duration::from_secs(10), |t| t.contains("apply")).await;
    for action in ["sign_in", "create", "plan", "apply", "destroy", "token_create"] {
        assert!(audit.contains(action), "no {action} in the audit page");
    }
    let all = c.find(Locator::Css("#all-services")).await.unwrap().text().await.unwrap();
    assert!(all.contains("web") && all.contains(&t.client), "{all}");
    shot(&c, "19-admin").await;
    violations.extend(csp_violations(&c, &driver).await);
    assert!(violations.is_empty(), "the pages broke their Content-Security-Policy: {violations:#?}");
    // Positive control: an inline script, which the policy forbids, is reported as a violation.
    c.execute(
        "var s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.appendChild(s);",
        vec![],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut control = Vec::new();
    while control.is_empty() {
        assert!(Instant::now() < deadline, "an inline script ran without a CSP violation in the console");
        control = csp_violations(&c, &driver).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(control.iter().any(|m| m.contains("inline script")), "{control:#?}");
    let ran = c.execute("return window.x === 1", vec![]).await.unwrap();
    assert_eq!(ran, json!(false), "the inline script ran");

    c.close().await.unwrap();
    drop(driver);
}

/// Single sign-on in the browser against a real OpenID provider on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_single_sign_on_through_a_real_openid_provider() {
    let port = free_port();
    let _provider = tokio::process::Command::new("oidc-provider-mock")
        .args(["--port", &port.to_string(), "--require-nonce", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start oidc-provider-mock ({e}): run scripts/test.sh, which installs it"));
    let issuer = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "oidc-provider-mock did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let config_issuer = issuer.clone();
    let t = TestServer::start(move |c| {
        c.oidc = Some(spawnit_server::oidc::OidcConfig {
            issuer: config_issuer,
            client_id: "spawnit-browser".into(),
            client_secret: "browser-secret".into(),
            client_claim: Some("spawnit_client".into()),
            public_url: None,
        })
    })
    .await;
    let r = reqwest::Client::new()
        .put(format!("{issuer}/users/sso-sub"))
        .json(&json!({"preferred_username": "sso.user", "spawnit_client": t.client}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let driver = chromedriver().await;
    let c = browser(&driver).await;
    c.goto(&t.url("/catalog")).await.unwrap();
    click(&c, "a[href^='/auth/oidc/start']").await;
    let input = c.wait().for_element(Locator::Css("input[name=sub]")).await.unwrap();
    shot(&c, "20-sso-provider").await;
    input.send_keys("sso-sub").await.unwrap();
    click(&c, "form button[type=submit]").await;
    wait_text(&c, "main h1", "signed in by SSO, back on the catalog", Duration::from_secs(15), |t| t == "Catalog")
        .await;
    let who = c.find(Locator::Css(".who")).await.unwrap().text().await.unwrap();
    assert!(who.contains("sso-user") && who.contains(&t.client), "{who}");
    shot(&c, "21-sso-signed-in").await;
    c.close().await.unwrap();
    drop(driver);
}
