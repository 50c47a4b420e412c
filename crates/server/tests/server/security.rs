//! The web UI's defences over real HTTP against a real server: no redirect to another site
//! after signing in, sign-in floods limited per address and audited in bounded space, and the
//! security headers on every page.

use crate::common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_limit_holds_across_replicas_sharing_a_store() {
    let t = TestServer::start(|_| {}).await;
    t.user("vic", &t.client, Role::Member, "vic-password-1").await;
    let (engine, docker) = engine_for(t.dir.path()).await;
    let config = spawnit_server::ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let second = spawnit_server::Server::start(engine, docker, config).await.unwrap();
    let replicas = [t.url("/login"), format!("http://{}/login", second.addr)];
    let http = http_no_redirect();
    let attempt = |url: &str, password: &str| {
        let (http, url, password) = (http.clone(), url.to_owned(), password.to_owned());
        async move {
            let resp = http.post(url).form(&[("user", "vic"), ("password", password.as_str())]).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // A guesser alternates between the replicas: each sees the other's failures.
    for i in 0..RateLimit::MAX {
        let (status, body) = attempt(&replicas[i % 2], "guess-guess").await;
        assert_eq!(status, 401, "attempt {i} on replica {}: {body}", i % 2);
    }
    for (i, url) in replicas.iter().enumerate() {
        let (status, body) = attempt(url, "vic-password-1").await;
        assert_eq!(status, 429, "replica {i} does not count the other's failures: {body}");
    }
    second.run_until(async {}).await;
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

/// The isolation sweep of the cluster's routes, on a real Swarm: every documented operation
/// under `/api/nodes` and `/api/leases`, and the nodes pages, as anonymous, as another client's
/// member (by token naming the victim's client, and by session), and as the owner (an admin on
/// admin routes) for the positive control. Another client never sees the victim's rented
/// node — not its id, hostname or address — and cannot extend or release it; members never
/// reach the admin routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_routes_never_show_a_clients_node_to_another_client() {
    use common::cluster::*;
    use reqwest::Method as M;
    use serde_json::json;

    let swarm = swarm_start("isolation", 3).await;
    let t = server_on(&swarm).await;
    t.nodes_until("3 ready nodes", std::time::Duration::from_secs(30), |n| {
        n.len() == 3 && n.iter().all(|n| n["status"] == "ready")
    })
    .await;
    let victim = t.client.clone();
    let other = client_unique();
    t.user("mallory", &other, Role::Member, "mallory-password-1").await;
    let mallory = t.sign_in("mallory", "mallory-password-1").await;
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    let other_token =
        spawnit_server::auth::token_create(&store, "mallory", &spawnit_model::Id::parse(&other).unwrap(), Role::Member)
            .await
            .unwrap();

    // The victim rents one of the two workers.
    let (status, rented) = t.post("/api/leases", json!({"count": 1, "ttl": "1h"})).await;
    assert_eq!(status, 201, "{rented}");
    let node_id = rented["leases"][0]["node_id"].as_str().unwrap().to_owned();
    let nodes = t.nodes().await;
    let node = nodes.iter().find(|n| n["id"] == node_id.as_str()).unwrap().clone();
    let hostname = node["hostname"].as_str().unwrap().to_owned();
    let address = node["address"].as_str().unwrap().to_owned();
    let needles = [node_id.as_str(), hostname.as_str(), address.as_str()];

    struct Op {
        method: M,
        documented: &'static str,
        path: String,
        body: Option<Value>,
        /// Owner (admin on admin routes), other client's token naming the victim, other client's session.
        statuses: [u16; 3],
        admin_route: bool,
    }
    let op = |method: M, documented: &'static str, path: &str, body: Option<Value>, statuses: [u16; 3]| Op {
        method,
        documented,
        path: path.to_owned(),
        body,
        statuses,
        admin_route: documented.starts_with("/api/nodes"),
    };
    let ops = vec![
        op(M::GET, "/api/nodes", "/api/nodes", None, [200, 403, 403]),
        op(M::GET, "/api/nodes/join-token", "/api/nodes/join-token", None, [200, 403, 403]),
        op(M::GET, "/api/nodes/{id}", &format!("/api/nodes/{node_id}"), None, [200, 403, 403]),
        op(M::POST, "/api/nodes/{id}/drain", &format!("/api/nodes/{node_id}/drain"), None, [200, 403, 403]),
        op(M::POST, "/api/nodes/{id}/activate", &format!("/api/nodes/{node_id}/activate"), None, [200, 403, 403]),
        // (The positive control of a removal: an admin gets past the check, to "not found".)
        op(M::DELETE, "/api/nodes/{id}", "/api/nodes/nosuchnode", None, [404, 403, 403]),
        op(M::GET, "/api/leases", "/api/leases", None, [200, 404, 200]),
        op(
            M::POST,
            "/api/leases/{node}/extend",
            &format!("/api/leases/{node_id}/extend"),
            Some(json!({"by": "1h"})),
            [200, 404, 404],
        ),
        op(
            M::POST,
            "/api/leases/{node}/extend",
            &format!("/api/leases/{hostname}/extend"),
            Some(json!({"by": "1h"})),
            [200, 404, 404],
        ),
        // The other client rents the last free worker for itself; the owner then finds none free,
        // and is not told whose it is.
        op(M::POST, "/api/leases", "/api/leases", Some(json!({"count": 1, "ttl": "1h"})), [409, 404, 201]),
        op(M::DELETE, "/api/leases/{node}", &format!("/api/leases/{hostname}"), None, [204, 404, 404]),
    ];
    // The sweep covers every documented operation of the cluster.
    let doc: Value = reqwest::get(t.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/api/nodes") || path.starts_with("/api/leases") {
            documented.extend(methods.as_object().unwrap().keys().map(|m| format!("{} {path}", m.to_uppercase())));
        }
    }
    documented.sort();
    let mut covered: Vec<String> = ops.iter().map(|o| format!("{} {}", o.method, o.documented)).collect();
    covered.sort();
    covered.dedup();
    assert_eq!(covered, documented, "the sweep must cover every documented operation of the cluster");

    enum Auth {
        Anonymous,
        Bearer(String),
        Session(Session),
    }
    let http = reqwest::Client::new();
    let send = |method: M, url: String, auth: Auth, body: Option<Value>| {
        let http = http.clone();
        async move {
            let mut req = http.request(method, &url);
            req = match auth {
                Auth::Anonymous => req,
                Auth::Bearer(token) => req.bearer_auth(token),
                Auth::Session(s) => req.header("cookie", s.cookie).header("x-csrf-token", s.csrf),
            };
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            (resp.status().as_u16(), resp.text().await.unwrap_or_default())
        }
    };
    let with_client = |path: &str| format!("{path}?client={victim}");
    let mut others_node: Option<String> = None;
    for o in &ops {
        let what = format!("{} {}", o.method, o.path);
        let (status, text) =
            send(o.method.clone(), t.url(&with_client(&o.path)), Auth::Anonymous, o.body.clone()).await;
        assert_eq!(status, 401, "anonymous {what}: {text}");
        let bearer = Auth::Bearer(other_token.clone());
        let (status, text) = send(o.method.clone(), t.url(&with_client(&o.path)), bearer, o.body.clone()).await;
        assert_eq!(status, o.statuses[1], "{what} by another client's token naming the victim: {text}");
        for needle in needles.iter().filter(|n| !o.path.contains(**n)) {
            assert!(!text.contains(needle), "{what} by another client's token shows {needle}: {text}");
        }
        let session = Auth::Session(mallory.clone());
        let (status, text) = send(o.method.clone(), t.url(&o.path), session, o.body.clone()).await;
        assert_eq!(status, o.statuses[2], "{what} by another client's session: {text}");
        for needle in needles.iter().filter(|n| !o.path.contains(**n)) {
            assert!(!text.contains(needle), "{what} by another client's session shows {needle}: {text}");
        }
        if o.documented == "/api/leases" && o.method == M::POST {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["leases"][0]["client"], other.as_str(), "{answer}");
            others_node = answer["leases"][0]["hostname"].as_str().map(str::to_owned);
        }
        let owner = Auth::Bearer(if o.admin_route { t.admin.clone() } else { t.token.clone() });
        let (status, text) = send(o.method.clone(), t.url(&with_client(&o.path)), owner, o.body.clone()).await;
        assert_eq!(status, o.statuses[0], "{what} by the owner (the positive control): {text}");
        if o.documented == "/api/leases" && o.method == M::GET {
            assert!(text.contains(&hostname), "the owner's lease list shows its node: {text}");
        }
        if let Some(theirs) = &others_node {
            assert!(
                !text.contains(theirs.as_str()),
                "{what} shows the victim the other client's node {theirs}: {text}"
            );
        }
    }
    let theirs = others_node.expect("the other client rented a node");

    // Pages: the other client's nodes page never shows the victim's node; the victim's is 404;
    // the cluster page and its buttons are admins' only.
    let (status, page) = t.page(Some(&mallory), "/nodes").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&theirs), "the other client's page shows its own node: {page}");
    for needle in needles {
        assert!(!page.contains(needle), "/nodes of another client shows {needle}");
    }
    let (status, page) = t.page(Some(&mallory), &format!("/nodes?client={victim}")).await;
    assert_eq!(status, 404, "{page}");
    let (status, page) = t.page(Some(&mallory), "/admin/nodes").await;
    assert_eq!(status, 403, "{page}");
    for path in [
        format!("/admin/nodes/{node_id}/drain"),
        format!("/nodes/{node_id}/release"),
        format!("/nodes/{node_id}/extend"),
    ] {
        let (status, body) = t.form(Some(&mallory), &path, &[("by", "1h")], Some(&mallory.csrf)).await;
        assert!(matches!(status, 403 | 404), "POST {path} as another client's member: {status} {body}");
        for needle in needles.iter().filter(|n| !path.contains(**n)) {
            assert!(!body.contains(needle), "POST {path} shows {needle}");
        }
    }
    // The victim's released node went back to nobody, not to the other client.
    let released = t.nodes().await.into_iter().find(|n| n["id"] == node_id.as_str()).expect("the node is still listed");
    assert_ne!(released["client"], other.as_str(), "{released}");
    drop(t);
    drop(swarm);
}
