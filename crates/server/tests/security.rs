//! The web UI's defences over real HTTP against a real server: no redirect to another site
//! after signing in, sign-in floods limited per address and audited in bounded space, and the
//! security headers on every page.

mod common;

use common::*;
use serde_json::Value;
use spawnit_server::accounts::RateLimit;
use spawnit_server::accounts::Role;

fn location(resp: &reqwest::Response) -> String {
    resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_never_redirects_to_another_site() {
    let t = TestServer::start(|_| {}).await;
    t.user("rita", &t.client, Role::Member, "rita-password-1").await;
    let http = http_no_redirect();
    let sign_in = |next: &'static str| {
        let http = http.clone();
        let url = t.url("/login");
        async move {
            let resp = http
                .post(url)
                .form(&[("user", "rita"), ("password", "rita-password-1"), ("next", next)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303, "sign-in with next={next:?} failed");
            location(&resp)
        }
    };
    // Positive control: a local path is where the browser goes.
    assert_eq!(sign_in("/catalog?q=redis").await, "/catalog?q=redis");
    for evil in [
        "/\t/evil.example",
        "/\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/%09/x/../\t/evil.example",
        " //evil.example",
    ] {
        assert_eq!(sign_in(evil).await, "/", "next={evil:?} was followed");
    }
    // The sign-in page does not carry such a `next` into its form either.
    let (_, page) = t.page(None, "/login?next=%2F%09%2Fevil.example").await;
    assert!(page.contains("name=\"next\" value=\"/\""), "{page}");
    assert!(!page.contains("evil.example"), "{page}");
    let (_, page) = t.page(None, "/login?next=%2Fnetworks").await;
    assert!(page.contains("name=\"next\" value=\"/networks\""), "{page}");
}

/// The entries of the audit log with action `sign_in_failed`, and the failures they count.
async fn failed_sign_in_entries(t: &TestServer, admin: &Session) -> (Vec<Value>, u64) {
    let (status, body) = t.page(Some(admin), "/api/audit?limit=5000").await;
    assert_eq!(status, 200, "{body}");
    let audit: Value = serde_json::from_str(&body).unwrap();
    let entries: Vec<Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "sign_in_failed").cloned().collect();
    let counted = entries
        .iter()
        .map(|e| {
            let detail = e["detail"].as_str().unwrap_or_default();
            detail.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(1)
        })
        .sum();
    (entries, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_per_address_and_audited_per_minute() {
    let t = TestServer::start(|_| {}).await;
    t.user("root", "default", Role::Admin, "root-password-1").await;
    let admin = t.sign_in("root", "root-password-1").await;
    let http = http_no_redirect();
    let attempt = |user: String| {
        let (http, url) = (http.clone(), t.url("/login"));
        async move {
            let resp =
                http.post(url).form(&[("user", user.as_str()), ("password", "guess-guess")]).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // An attacker varies the user name, so the per-(user, address) limit never triggers.
    for i in 0..RateLimit::MAX_PER_IP {
        let (status, body) = attempt(format!("victim{i}")).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    let (status, body) = attempt("victim-next".into()).await;
    assert_eq!(status, 429, "the address is not limited: {body}");
    assert!(body.contains("Too many failed sign-ins from your address"), "{body}");

    // Every failure is in the audit log, in one entry per address and minute (the attempts
    // above span at most a few minutes), not one object per attempt.
    let (entries, counted) = failed_sign_in_entries(&t, &admin).await;
    assert_eq!(counted, RateLimit::MAX_PER_IP as u64, "{entries:#?}");
    assert!(entries.len() <= 3, "{} audit objects for {} failures: {entries:#?}", entries.len(), RateLimit::MAX_PER_IP);
    let details: String = entries.iter().map(|e| e["detail"].as_str().unwrap_or_default()).collect();
    assert!(details.contains("victim0"), "the names tried are not recorded: {details}");
    assert!(entries.iter().all(|e| e["ip"] == "127.0.0.1"), "{entries:#?}");
}

/// The security headers every answer must carry.
fn assert_security_headers(what: &str, resp: &reqwest::Response, secret_page: bool) {
    let h = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    for directive in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]
    {
        assert!(csp.split(';').any(|d| d.trim() == directive), "{what}: CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(h("referrer-policy").as_deref(), Some("same-origin"), "{what}");
    if secret_page {
        assert_eq!(h("cache-control").as_deref(), Some("no-store"), "{what}");
    }
}

/// Whether a page holds code the CSP forbids: an inline script, a style element or attribute,
/// or an inline event handler.
fn inline_code(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..lower[i..].find('>').map_or(lower.len(), |e| i + e)];
        if !tag.contains(" src=") {
            found.push(tag.to_owned());
        }
    }
    for bad in ["<style", " style=\"", " style='"] {
        if lower.contains(bad) {
            found.push(bad.to_owned());
        }
    }
    for word in lower.split(|c: char| c.is_whitespace()) {
        if word.starts_with("on")
            && word.contains('=')
            && word[2..word.find('=').unwrap()].chars().all(|c| c.is_ascii_lowercase())
            && word.len() > 3
        {
            found.push(word.to_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_security_headers() {
    let t = TestServer::start(|_| {}).await;
    t.user("root", "default", Role::Admin, "root-password-1").await;
    let admin = t.sign_in("root", "root-password-1").await;
    let http = http_no_redirect();
    let get = |path: &str, session: Option<&Session>| {
        let mut req = http.get(t.url(path));
        if let Some(s) = session {
            req = req.header("cookie", &s.cookie);
        }
        req.send()
    };

    // Anonymous pages, the static files, an error page, the JSON API and its 404.
    for path in ["/login", "/signup", "/no-such-page", "/healthz", "/api/catalog", "/api/nothing"] {
        let resp = get(path, None).await.unwrap();
        assert_security_headers(path, &resp, false);
    }
    for path in ["/static/app.js", "/static/style.css"] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_security_headers(path, &resp, false);
        assert!(resp.headers().get("cache-control").is_none(), "{path}: the static files may be cached");
    }
    // Every signed-in page: the headers, no-store, and no inline code the CSP would block.
    for path in ["/", "/catalog", "/catalog/hello", "/networks", "/tokens", "/admin", "/api/me"] {
        let resp = get(path, Some(&admin)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_security_headers(path, &resp, true);
        let page = resp.text().await.unwrap();
        assert!(page.contains("root"), "{path} is not the signed-in page: {page}");
        assert!(inline_code(&page).is_empty(), "{path} has inline code: {:?}", inline_code(&page));
    }
    // The page that shows a new token once.
    let resp = http
        .post(t.url("/tokens"))
        .header("cookie", &admin.cookie)
        .form(&[("name", "laptop"), ("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_security_headers("the new token page", &resp, true);
    let page = resp.text().await.unwrap();
    assert!(page.contains("spawnit_"), "the token is not shown: {page}");
    // The sign-in answer (sets the session cookie).
    let resp = http
        .post(t.url("/login"))
        .form(&[("user", "root"), ("password", "root-password-1"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_security_headers("the sign-in answer", &resp, true);
    // Positive control of the inline-code check.
    assert!(!inline_code("<p onclick=\"x()\">").is_empty() && !inline_code("<script>x()</script>").is_empty());
    // Over http, no Strict-Transport-Security.
    assert!(get("/login", None).await.unwrap().headers().get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_public_url_adds_strict_transport_security() {
    let t = TestServer::start(|c| c.public_url = Some("https://spawnit.example.com".into())).await;
    for path in ["/login", "/api/catalog", "/static/style.css"] {
        let resp = reqwest::get(t.url(path)).await.unwrap();
        let hsts = resp.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(hsts.as_deref(), Some(spawnit_server::headers::STRICT_TRANSPORT_SECURITY), "{path}");
        assert_security_headers(path, &resp, false);
    }
}
