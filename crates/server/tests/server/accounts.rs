//! Accounts, sessions, CSRF, the audit log, API tokens and tenant isolation, over real HTTP
//! against a real server (pages and API): every route as another client's member, as a member
//! on admin routes and anonymously is refused with no data; secrets never appear anywhere.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;

const PASSWORD: &str = "correct-horse-battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sign_out_rate_limit_and_tokens() {
    let t = TestServer::start(|_| {}).await;
    t.user("carol", &t.client, Role::Member, PASSWORD).await;

    // Anonymous pages go to the sign-in page; the sign-in page itself is a form.
    let (status, body) = t.page(None, "/").await;
    assert_eq!(status, 303, "{body}");
    let (status, body) = t.page(None, "/login").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<label for="user">"#) && body.contains(r#"name="password""#), "{body}");

    // The session cookie is HttpOnly, SameSite=Lax; not Secure on loopback.
    let resp = http_no_redirect()
        .post(t.url("/login"))
        .form(&[("user", "carol"), ("password", PASSWORD), ("next", "/catalog")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/catalog");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"), "{set}");
    let s = t.sign_in("carol", PASSWORD).await;
    let (status, body) = t.page(Some(&s), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("My services") && body.contains("carol"), "{body}");

    // Sessions are stored hashed: the cookie value is nowhere in the store.
    let session_id = s.cookie.split_once('=').unwrap().1;
    let mut stored = String::new();
    for entry in walk(t.dir.path()) {
        stored.push_str(&std::fs::read_to_string(&entry).unwrap_or_else(|e| panic!("read {}: {e}", entry.display())));
    }
    assert!(!stored.contains(session_id), "the session id is stored in clear");
    assert!(!stored.contains(PASSWORD), "a password is stored in clear");

    // A wrong password is a readable message; the 6th failure within 5 min is a 429.
    for _ in 0..5 {
        let (status, body) = t.form(None, "/login", &[("user", "carol"), ("password", "wrong-password")], None).await;
        assert_eq!(status, 401);
        assert!(body.contains("Wrong user name or password."), "{body}");
    }
    let (status, body) = t.form(None, "/login", &[("user", "carol"), ("password", PASSWORD)], None).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("Too many failed sign-ins"), "{body}");

    // API tokens of the session's user: create (shown once), list (never shown), use, revoke.
    let http = reqwest::Client::new();
    let created: Value = http
        .post(t.url("/api/tokens"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "laptop");
    let listed: Value = http.get(t.url("/api/tokens")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1, "{listed}");
    assert!(!listed.to_string().contains(&token));
    let (status, page) = t.page(Some(&s), "/tokens").await;
    assert_eq!(status, 200);
    assert!(page.contains("laptop") && !page.contains(&token));
    let id = created["id"].as_str().unwrap();
    let resp = http.delete(t.url(&format!("/api/tokens/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = http.get(t.url("/api/tokens")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 401, "a revoked token still works");

    // Sign-out ends the session in the store.
    let (status, _) = t.form(Some(&s), "/logout", &[], Some(&s.csrf)).await;
    assert_eq!(status, 303);
    let (status, _) = t.page(Some(&s), "/").await;
    assert_eq!(status, 303, "the session outlived sign-out");

    // The audit log saw all of it; admins read it, members cannot.
    t.user("root", "default", Role::Admin, PASSWORD).await;
    let admin = t.sign_in("root", PASSWORD).await;
    let (status, body) = t.page(Some(&admin), "/api/audit").await;
    assert_eq!(status, 200, "{body}");
    let log: Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["sign_in", "sign_in_failed", "token_create", "token_revoke", "sign_out"] {
        assert!(actions.contains(&a), "no {a} in {actions:?}");
    }
    assert!(log["entries"][0]["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"), "{}", log["entries"][0]);
    let (status, page) = t.page(Some(&admin), "/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("Audit log") && page.contains("sign_in_failed") && page.contains("carol"), "{page}");
    // Each background task's last run: the drift sweep and the lease keeper run at start.
    let row = |task: &str| {
        let start = page.find(&format!("<td>{task}</td>")).unwrap_or_else(|| panic!("no row for {task}: {page}"));
        page[start..].split("</tr>").next().unwrap().to_owned()
    };
    assert!(page.contains("Background tasks"), "{page}");
    for task in ["drift_sweep", "lease_keeper"] {
        assert!(row(task).contains(">ok<"), "{}", row(task));
    }
    // The index refresh runs every sweep interval (30 s): not yet, or already, on a slow machine.
    let index_refresh = row("index_refresh");
    assert!(index_refresh.contains("not run yet") || index_refresh.contains(">ok<"), "{index_refresh}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_is_required_for_every_state_change_with_the_cookie() {
    let t = TestServer::start(|_| {}).await;
    t.user("dave", &t.client, Role::Member, PASSWORD).await;
    let s = t.sign_in("dave", PASSWORD).await;
    let (status, body) = t.post("/api/services", json!({"template": "hello", "name": "web"})).await;
    assert_eq!(status, 201, "{body}");

    // A form post without the token, or with another one, is refused and does nothing.
    for csrf in [None, Some("not-the-token")] {
        let (status, body) = t.form(Some(&s), "/services/web/plan", &[], csrf).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("security token"), "{body}");
    }
    let (status, body) = t.form(Some(&s), "/networks", &[("name", "other")], None).await;
    assert_eq!(status, 403, "{body}");
    let (_, jobs) = t.get("/api/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "a refused form started a job: {jobs}");

    // The API with the cookie: reads are fine, writes need X-CSRF-Token.
    let http = reqwest::Client::new();
    let resp = http.get(t.url("/api/services")).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.post(t.url("/api/services/web/plan")).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http
        .post(t.url("/api/services/web/plan"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // With the token, the form works.
    let (status, body) = t.form(Some(&s), "/services/web/plan", &[], Some(&s.csrf)).await;
    assert_eq!(status, 303, "{body}");
    assert!(body.starts_with("location: /services/web?job="), "{body}");
}

/// Every page path, with `{svc}`, `{job}` and `{client}` filled in.
const PAGES_GET: &[&str] = &[
    "/",
    "/catalog",
    "/catalog/hello",
    "/services/{svc}",
    "/networks",
    "/tokens",
    "/admin",
    "/services/{svc}?client={client}",
    "/catalog/hello?client={client}",
    "/networks?client={client}",
];

const PAGES_POST: &[&str] = &[
    "/catalog/hello?client={client}",
    "/services/{svc}/plan",
    "/services/{svc}/apply",
    "/services/{svc}/destroy",
    "/services/{svc}/lease",
    "/services/{svc}/scale",
    "/services/{svc}/delete",
    "/services/{svc}/plan?client={client}",
    "/services/{svc}/apply?client={client}",
    "/services/{svc}/destroy?client={client}",
    "/services/{svc}/delete?client={client}",
    "/jobs/{job}/cancel",
    "/networks?client={client}",
    "/networks/default/apply?client={client}",
    "/networks/default/destroy?client={client}",
    "/admin/users",
    "/admin/settings",
];

/// One API operation of the isolation matrix, called on the victim's objects.
struct Op {
    method: Method,
    /// The path as documented in the OpenAPI document.
    documented: &'static str,
    /// The path with the victim's ids filled in (no query).
    path: String,
    /// A body that passes validation (the owner's same request succeeds with it).
    body: Option<Value>,
    /// What the owner (or, on admin routes, an admin) gets.
    owner: u16,
    /// What another client's member gets with a token, naming the victim's client.
    other_token: u16,
    /// What another client's member gets with a session, without naming a client.
    other_session: u16,
    /// On admin routes the positive control is an admin's request.
    admin_route: bool,
}

fn op(method: Method, documented: &'static str, path: &str, body: Option<Value>, statuses: [u16; 3]) -> Op {
    let [owner, other_token, other_session] = statuses;
    Op { method, documented, path: path.to_owned(), body, owner, other_token, other_session, admin_route: false }
}

/// `path?client=…` (or `&client=…`).
fn with_client(path: &str, client: &str) -> String {
    if path.contains('?') { format!("{path}&client={client}") } else { format!("{path}?client={client}") }
}

/// The id of a token's record: the first 40 hex digits of its SHA-256.
fn token_record_id(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()[..40].to_owned()
}

/// Sends one request; returns the status and the body (a stream's body is not read).
async fn send(
    http: &reqwest::Client,
    method: &Method,
    url: String,
    auth: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    body: &Option<Value>,
) -> (u16, String) {
    let mut req = auth(http.request(method.clone(), &url)).timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let streaming =
        resp.headers().get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if streaming {
        return (status, String::new());
    }
    let text = resp.text().await.unwrap_or_else(|e| panic!("read the answer to {method} {url}: {e}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_matrix_every_route_refuses_other_clients_members_and_anonymous() {
    let t = TestServer::start(|_| {}).await;
    let victim = t.client.clone();
    let other = client_unique();
    t.user("victim", &victim, Role::Member, PASSWORD).await;
    t.user("mallory", &other, Role::Member, PASSWORD).await;
    let marker = "victim-private-message-4242";
    t.hello("secretsvc", marker).await;
    let (status, body) = t
        .post("/api/services", json!({"template": "hello", "name": "doomedsvc", "params": {"port": free_port()}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = t.post("/api/networks", json!({"name": "victimnet"})).await;
    assert_eq!(status, 201, "{body}");
    // A replicated service, for the scale routes (its apply waits for the lock held below).
    let scalesvc = json!({"template": "web-app", "name": "scalesvc", "params": {"http_port": free_port()}});
    let (status, body) = t.post("/api/services", scalesvc).await;
    assert_eq!(status, 201, "{body}");
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    let victim_id = spawnit_model::Id::parse(&victim).unwrap();
    let spare_token = spawnit_server::auth::token_create(&store, "alice", &victim_id, Role::Member).await.unwrap();
    let spare_token_id = token_record_id(&spare_token);
    let other_token =
        spawnit_server::auth::token_create(&store, "mallory", &spawnit_model::Id::parse(&other).unwrap(), Role::Member)
            .await
            .unwrap();
    let mallory = t.sign_in("mallory", PASSWORD).await;
    let http = reqwest::Client::new();

    // The event stream: another client's member gets its own events and none of the victim's,
    // although the victim's were on the bus in the same window.
    let mut theirs = t.sse_as(&other_token, "/api/events", None).await;
    let mut victims = t.sse("/api/events", None).await;
    let victim_job = t.post("/api/services/doomedsvc/plan", empty()).await.1;
    let victim_job_id = victim_job["id"].as_str().unwrap().to_owned();
    victims
        .until(Duration::from_secs(60), "the victim's own job event", |e| {
            e.event == "job"
                && e.data["job"] == victim_job_id.as_str()
                && !matches!(e.data["status"].as_str(), Some("queued" | "running"))
        })
        .await;
    let as_other = |m: Method, path: &str| http.request(m, t.url(path)).bearer_auth(&other_token);
    let resp = as_other(Method::POST, "/api/services")
        .json(&json!({"template": "hello", "name": "mine", "params": {"port": free_port()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let own_job: Value = as_other(Method::POST, "/api/services/mine/plan").send().await.unwrap().json().await.unwrap();
    let own_job_id = own_job["id"].as_str().unwrap().to_owned();
    let (own_finished, before) = theirs
        .until(Duration::from_secs(60), "the member's own job event", |e| {
            e.event == "job"
                && e.data["job"] == own_job_id.as_str()
                && !matches!(e.data["status"].as_str(), Some("queued" | "running"))
        })
        .await;
    assert_eq!(own_finished.data["client"], other.as_str());
    let seen = format!("{before:?}");
    assert!(seen.contains(&own_job_id), "the member's own earlier events arrived: {seen}");
    for needle in [victim_job_id.as_str(), "doomedsvc", "secretsvc", marker] {
        assert!(!seen.contains(needle), "the event stream leaks {needle}: {seen}");
    }
    assert!(before.iter().all(|e| e.data["client"] == other.as_str()), "{before:#?}");

    // A long job: an apply waiting for the lock this test holds, and a plan queued behind it.
    let svc_lock = store
        .lock_acquire(
            &spawnit_model::OwnerKey::service(&victim_id, &spawnit_model::Id::parse("secretsvc").unwrap()),
            "isolation-test",
            "apply",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let net_lock = store
        .lock_acquire(
            &spawnit_model::OwnerKey::network(&victim_id, &spawnit_model::Id::parse("victimnet").unwrap()),
            "isolation-test",
            "apply",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let scale_lock = store
        .lock_acquire(
            &spawnit_model::OwnerKey::service(&victim_id, &spawnit_model::Id::parse("scalesvc").unwrap()),
            "isolation-test",
            "apply",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let long_job = t.post("/api/services/secretsvc/apply", empty()).await.1;
    let long_id = long_job["id"].as_str().unwrap().to_owned();
    let mut long_events = t.sse(&format!("/api/jobs/{long_id}/events"), None).await;
    long_events
        .until(Duration::from_secs(30), "the apply waiting for the lock", |e| {
            e.data["text"].as_str().is_some_and(|m| m.contains("waiting for the lock"))
        })
        .await;
    let queued = t.post("/api/services/secretsvc/plan", empty()).await.1;
    let job_id = queued["id"].as_str().unwrap().to_owned();
    let (_, record) = t.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(record["status"], "queued", "{record}");
    assert_eq!(t.get(&format!("/api/jobs/{long_id}")).await.1["status"], "running");

    // Pages as another client's member: 404 (or 403 on admin pages), never the victim's data.
    let fill = |p: &str| p.replace("{svc}", "secretsvc").replace("{job}", &job_id).replace("{client}", &victim);
    for p in PAGES_GET {
        let path = fill(p);
        let (status, body) = t.page(Some(&mallory), &path).await;
        let allowed = match *p {
            "/" | "/catalog" | "/catalog/hello" | "/networks" | "/tokens" => status == 200,
            "/admin" => status == 403,
            _ => status == 404,
        };
        assert!(allowed, "GET {path} as another client's member: {status}");
        assert!(!body.contains(marker), "GET {path} leaks the victim's data: {body}");
        assert!(status == 404 || !body.contains("secretsvc"), "GET {path} leaks: {body}");
    }
    for p in PAGES_POST {
        let path = fill(p);
        let fields = [("name", "x-web"), ("client", &victim as &str), ("password", "whatever-password"), ("ttl", "1h")];
        let (status, body) = t.form(Some(&mallory), &path, &fields, Some(&mallory.csrf)).await;
        assert!(matches!(status, 403 | 404), "POST {path} as another client's member: {status} {body}");
        assert!(!body.contains(marker), "POST {path} leaks");
    }
    // Anonymous: every page sends to the sign-in page, every form post too.
    for p in PAGES_GET {
        let (status, body) = t.page(None, &fill(p)).await;
        assert_eq!(status, 303, "anonymous GET {p}");
        assert!(!body.contains(marker));
    }
    for p in PAGES_POST {
        let (status, body) = t.form(None, &fill(p), &[], None).await;
        assert_eq!(status, 303, "anonymous POST {p}: {body}");
    }

    // Every API operation with a body that passes validation: another client's member gets 404
    // (403 on admin routes) and none of the victim's data, by token naming the victim's client
    // and by session; the owner's same request (an admin's on admin routes) succeeds, so each
    // refusal is the tenant check and not a malformed request.
    // No port: each client's x-web gets a free one (the same port for both would be refused).
    let create = json!({"template": "hello", "name": "x-web"});
    let user_body = json!({"name": "x-user", "client": victim, "role": "member", "password": PASSWORD});
    let svc = "/api/services/secretsvc";
    let net = "/api/networks/victimnet";
    let job = format!("/api/jobs/{job_id}");
    use Method as M;
    let mut ops = vec![
        op(M::GET, "/api/catalog", "/api/catalog", None, [200, 200, 200]),
        op(M::GET, "/api/catalog/{template}", "/api/catalog/hello", None, [200, 200, 200]),
        op(M::GET, "/api/services", "/api/services", None, [200, 404, 200]),
        op(M::POST, "/api/services", "/api/services", Some(create.clone()), [201, 404, 201]),
        op(M::GET, "/api/services/{id}", svc, None, [200, 404, 404]),
        op(M::PATCH, "/api/services/{id}", svc, Some(json!({"drift_policy": "notify"})), [200, 404, 404]),
        op(M::DELETE, "/api/services/{id}", "/api/services/doomedsvc", None, [204, 404, 404]),
        op(M::POST, "/api/services/{id}/plan", &format!("{svc}/plan"), None, [202, 404, 404]),
        op(M::POST, "/api/services/{id}/apply", &format!("{svc}/apply"), None, [202, 404, 404]),
        op(M::POST, "/api/services/{id}/destroy", &format!("{svc}/destroy"), None, [202, 404, 404]),
        op(M::PUT, "/api/services/{id}/lease", &format!("{svc}/lease"), Some(json!({"ttl": "1h"})), [200, 404, 404]),
        op(
            M::POST,
            "/api/services/{id}/lease/extend",
            &format!("{svc}/lease/extend"),
            Some(json!({"ttl": "1h"})),
            [200, 404, 404],
        ),
        op(M::DELETE, "/api/services/{id}/lease", &format!("{svc}/lease"), None, [200, 404, 404]),
        op(M::GET, "/api/services/{id}/scale", &format!("{svc}/scale"), None, [200, 404, 404]),
        op(
            M::POST,
            "/api/services/{id}/scale",
            "/api/services/scalesvc/scale",
            Some(json!({"replicas": 3})),
            [202, 404, 404],
        ),
        op(M::GET, "/api/networks", "/api/networks", None, [200, 404, 200]),
        op(M::POST, "/api/networks", "/api/networks", Some(json!({"name": "x-net"})), [201, 404, 201]),
        op(M::GET, "/api/networks/{id}", net, None, [200, 404, 404]),
        op(M::POST, "/api/networks/{id}/plan", &format!("{net}/plan"), None, [202, 404, 404]),
        op(M::POST, "/api/networks/{id}/apply", &format!("{net}/apply"), None, [202, 404, 404]),
        op(M::POST, "/api/networks/{id}/destroy", &format!("{net}/destroy"), None, [202, 404, 404]),
        op(M::GET, "/api/jobs", "/api/jobs", None, [200, 200, 200]),
        op(M::GET, "/api/jobs/{id}", &job, None, [200, 404, 404]),
        op(M::GET, "/api/jobs/{id}/events", &format!("{job}/events"), None, [200, 404, 404]),
        op(M::POST, "/api/jobs/{id}/cancel", &format!("{job}/cancel"), None, [202, 404, 404]),
        op(M::GET, "/api/me", "/api/me", None, [200, 200, 200]),
        op(M::GET, "/api/tokens", "/api/tokens", None, [200, 200, 200]),
        op(M::POST, "/api/tokens", "/api/tokens", Some(json!({"name": "x-token"})), [201, 201, 201]),
        op(M::DELETE, "/api/tokens/{id}", &format!("/api/tokens/{spare_token_id}"), None, [204, 404, 404]),
        op(M::GET, "/api/users", "/api/users", None, [200, 403, 403]),
        op(M::POST, "/api/users", "/api/users", Some(user_body), [201, 403, 403]),
        op(M::GET, "/api/audit", "/api/audit", None, [200, 403, 403]),
    ];
    for o in ops.iter_mut().filter(|o| ["/api/users", "/api/audit"].contains(&o.documented)) {
        o.admin_route = true;
    }
    // The matrix covers every documented operation (but this document and the event stream,
    // checked above, and the cluster's nodes and leases, which need a Swarm: their sweep is in
    // security.rs).
    let doc: Value = reqwest::get(t.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let cluster = path.starts_with("/api/nodes") || path.starts_with("/api/leases");
        if path.starts_with("/api/") && path != "/api/openapi.json" && path != "/api/events" && !cluster {
            documented.extend(methods.as_object().unwrap().keys().map(|m| format!("{} {path}", m.to_uppercase())));
        }
    }
    documented.sort();
    let mut covered: Vec<String> = ops.iter().map(|o| format!("{} {}", o.method, o.documented)).collect();
    covered.sort();
    assert_eq!(covered, documented, "the isolation matrix must cover every documented operation");

    // What another client's member must never see.
    let needles = [
        marker,
        "secretsvc",
        "doomedsvc",
        "scalesvc",
        "victimnet",
        job_id.as_str(),
        long_id.as_str(),
        victim_job_id.as_str(),
        spare_token_id.as_str(),
    ];
    for o in &ops {
        let what = format!("{} {}", o.method, o.documented);
        // Anonymous.
        let (status, text) = send(&http, &o.method, t.url(&with_client(&o.path, &victim)), |r| r, &o.body).await;
        assert_eq!(status, 401, "anonymous {what}: {text}");
        // Another client's member, by token, naming the victim's client.
        let (status, text) =
            send(&http, &o.method, t.url(&with_client(&o.path, &victim)), |r| r.bearer_auth(&other_token), &o.body)
                .await;
        assert_eq!(status, o.other_token, "{what} by another client's token: {text}");
        // (A 404 may repeat a name the caller sent: only what it did not send counts.)
        for needle in needles.iter().filter(|n| !o.path.contains(**n)) {
            assert!(!text.contains(needle), "{what} by another client's token shows {needle}: {text}");
        }
        // The same by session, without naming a client: the victim's ids do not exist.
        let session =
            |r: reqwest::RequestBuilder| r.header("cookie", &mallory.cookie).header("x-csrf-token", &mallory.csrf);
        let (status, text) = send(&http, &o.method, t.url(&o.path), session, &o.body).await;
        assert_eq!(status, o.other_session, "{what} by another client's session: {text}");
        for needle in needles.iter().filter(|n| !o.path.contains(**n)) {
            assert!(!text.contains(needle), "{what} by another client's session shows {needle}: {text}");
        }
        // Positive control: the owner's (an admin's) same request is accepted.
        let owner_token = if o.admin_route { t.admin.clone() } else { t.token.clone() };
        let (status, text) =
            send(&http, &o.method, t.url(&with_client(&o.path, &victim)), |r| r.bearer_auth(&owner_token), &o.body)
                .await;
        assert_eq!(status, o.owner, "{what} by the owner (the positive control): {text}");
        if ["/api/services", "/api/jobs", "/api/networks"].contains(&o.documented) && o.method == M::GET {
            let expected = match o.documented {
                "/api/services" => "secretsvc",
                "/api/networks" => "victimnet",
                _ => job_id.as_str(),
            };
            assert!(text.contains(expected), "the owner's {what} lists {expected}: {text}");
        }
    }

    // The victim's jobs were only ever touched by the victim: the queued one was cancelled by
    // its owner above (202: it was still queued), the long one is still waiting for the lock.
    let (_, record) = t.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["requested_by"], "alice");
    let (_, record) = t.get(&format!("/api/jobs/{long_id}")).await;
    assert_eq!(record["status"], "running", "{record}");
    let (status, body) = t.get(svc).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["params"]["message"].as_str().is_some_and(|m| m == marker), "{body}");
    // Stop the long job and what the owner queued behind it, then let go of the locks.
    for j in t.get("/api/jobs").await.1["jobs"].as_array().unwrap() {
        if matches!(j["status"].as_str(), Some("queued" | "running")) {
            t.post(&format!("/api/jobs/{}/cancel", j["id"].as_str().unwrap()), empty()).await;
        }
    }
    for j in t.get("/api/jobs").await.1["jobs"].as_array().unwrap() {
        t.job_wait(j).await;
    }
    assert_eq!(t.get(&format!("/api/jobs/{long_id}")).await.1["status"], "cancelled");
    svc_lock.release().await.unwrap();
    net_lock.release().await.unwrap();
    scale_lock.release().await.unwrap();
}

/// Every log line the server writes in this test process, at every level.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_pages_api_answers_events_or_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    // Everything at trace level, with the directives the binary always adds (without them,
    // bollard's trace of the container create request shows the password).
    let filter = spawnit_server::LOG_QUIET
        .iter()
        .map(|d| d.parse().unwrap())
        .fold(tracing_subscriber::EnvFilter::new("trace"), |f, d| f.add_directive(d));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    tracing::info!("log capture on");
    let t = TestServer::start(|_| {}).await;
    t.user("erin", &t.client, Role::Admin, PASSWORD).await;
    let secret = "Sup3rSecretRedisPassw0rd";
    let (status, body) = t
        .post(
            "/api/services",
            json!({"template": "redis", "name": "cache", "params": {"password": secret, "port": free_port()}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(secret));
    // Plan, apply (a real redis container with that password) and destroy: every job's record
    // and every event of its stream.
    let network = t.post("/api/networks/default/apply", empty()).await.1;
    assert_eq!(t.job_wait(&network).await["status"], "succeeded");
    let mut seen = String::new();
    for kind in ["plan", "apply", "destroy"] {
        let (status, job) = t.post(&format!("/api/services/cache/{kind}"), empty()).await;
        assert_eq!(status, 202, "{job}");
        let record = t.job_wait(&job).await;
        assert_eq!(record["status"], "succeeded", "{kind}: {record}");
        seen.push_str(&record.to_string());
        let mut events = t.sse(&format!("/api/jobs/{}/events", job["id"].as_str().unwrap()), None).await;
        let (finished, before) = events.until(Duration::from_secs(10), "finished", |e| e.event == "finished").await;
        assert_eq!(finished.data["outcome"], "succeeded", "{kind}: {before:?}");
        seen.push_str(&format!("{before:?}{finished:?}"));
        if kind == "apply" {
            // The container really runs with the secret: it is in its command, where it belongs.
            let container = docker(&["ps", "-q", "--filter", &format!("label=spawnit.client={}", t.client)]);
            let inspect = docker(&["inspect", container.trim()]);
            assert!(inspect.contains(secret), "the redis container does not run with the password");
            let (_, service) = t.get("/api/services/cache").await;
            assert_eq!(service["status"], "compliant", "{service}");
            assert!(service["resources"]["container.redis"]["id"].is_string(), "{service}");
            seen.push_str(&service.to_string());
        }
    }
    assert!(seen.contains("container.redis"), "the jobs did nothing with the container: {seen}");
    let labelled = docker(&["ps", "-aq", "--filter", &format!("label=spawnit.client={}", t.client)]);
    assert_eq!(labelled.trim(), "", "destroy left a container");
    for path in ["/api/services", "/api/services/cache", "/api/jobs", "/api/audit"] {
        seen.push_str(&t.get(path).await.1.to_string());
    }
    let s = t.sign_in("erin", PASSWORD).await;
    for path in ["/", "/catalog", "/catalog/redis", "/services/cache", "/networks", "/admin", "/tokens"] {
        let (status, page) = t.page(Some(&s), path).await;
        assert_eq!(status, 200, "{path}");
        seen.push_str(&page);
    }
    // The configure form shows a bad value's message next to its field, never the secret typed.
    let (status, page) = t
        .form(
            Some(&s),
            "/catalog/redis",
            &[("name", "cache2"), ("param.password", secret), ("param.maxmemory_mb", "1"), ("action", "save")],
            Some(&s.csrf),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="maxmemory_mb-error""#), "{page}");
    seen.push_str(&page);
    // Everything in the store but the spec itself.
    for entry in walk(t.dir.path()) {
        if entry.ends_with("spec.json") {
            continue;
        }
        seen.push_str(&std::fs::read_to_string(&entry).unwrap_or_else(|e| panic!("read {}: {e}", entry.display())));
    }
    let log_text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(log_text.contains("log capture on"), "logs are not captured");
    assert!(log_text.contains("TRACE") && log_text.contains("DEBUG"), "debug and trace lines are captured");
    let leaking: Vec<&str> = log_text.lines().filter(|l| l.contains(secret)).collect();
    assert!(leaking.is_empty(), "the secret appears in log lines: {leaking:#?}");
    assert!(!seen.contains(secret), "the secret appears somewhere");
    assert!(seen.contains("cache"), "nothing was looked at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_templates_cannot_ask_for_privileged_host_paths_or_the_docker_socket() {
    // The model refuses such fields outright: a template asking for them is not a template.
    for bad in [
        json!({"image": "x", "privileged": true}),
        json!({"image": "x", "volumes": [{"host": "/var/run/docker.sock", "path": "/var/run/docker.sock"}]}),
        json!({"image": "x", "binds": ["/:/host"]}),
        json!({"image": "x", "network_mode": "host"}),
        json!({"image": "x", "cap_add": ["SYS_ADMIN"]}),
        // The socket field exists for admin-only templates (SpawnIt deploying itself) only.
        json!({"image": "x", "docker_socket": true}),
        json!({"image": "x", "docker_socket": "true"}),
    ] {
        let template = json!({
            "id": "evil", "name": "Evil", "category": "demo", "description": "", "version": "1",
            "parameters": {}, "blueprint": {"containers": {"c": bad}}
        });
        let t: spawnit_model::Template = serde_json::from_value(template).unwrap();
        let rendered = spawnit_engine::template_check(&t);
        assert!(rendered.is_err(), "a template with {bad} renders");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_is_off_until_an_admin_opens_it_and_never_joins_another_client() {
    let t = TestServer::start(|_| {}).await;
    let (status, body) = t.page(None, "/signup").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Sign-up is off"), "{body}");
    let (status, _) = t.form(None, "/signup", &[("user", "newbie"), ("password", PASSWORD)], None).await;
    assert_eq!(status, 404);

    // A member cannot open it; an admin can, on the Admin page.
    t.user("member1", &t.client, Role::Member, PASSWORD).await;
    let m = t.sign_in("member1", PASSWORD).await;
    let (status, _) = t.form(Some(&m), "/admin/settings", &[("signup", "true")], Some(&m.csrf)).await;
    assert_eq!(status, 403);
    t.user("root", "default", Role::Admin, PASSWORD).await;
    let admin = t.sign_in("root", PASSWORD).await;
    let (status, body) = t.form(Some(&admin), "/admin/settings", &[("signup", "true")], Some(&admin.csrf)).await;
    assert_eq!(status, 200, "{body}");
    let (_, login) = t.page(None, "/login").await;
    assert!(login.contains(r#"href="/signup""#), "{login}");

    // A new person gets a client of their own.
    let (status, body) = t.form(None, "/signup", &[("user", "newbie"), ("password", PASSWORD)], None).await;
    assert_eq!(status, 303, "{body}");
    let s = t.sign_in("newbie", PASSWORD).await;
    let (_, me) = t.page(Some(&s), "/api/me").await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["client"], "newbie");
    // Nobody signs up into an existing client, or as an existing user; short passwords are refused.
    for (user, password, message) in [
        (t.client.as_str(), PASSWORD, "is taken"),
        ("newbie", PASSWORD, "is taken"),
        ("default", PASSWORD, "is taken"),
        ("other", "short", "at least 8"),
        ("Bad Name", PASSWORD, "Not a valid user name"),
    ] {
        let (status, body) = t.form(None, "/signup", &[("user", user), ("password", password)], None).await;
        assert_eq!(status, 422, "{user}: {body}");
        assert!(body.contains(message), "{user}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_listening_beyond_loopback() {
    let t = TestServer::start(|c| c.listen = "0.0.0.0:0".parse().unwrap()).await;
    t.user("frank", &t.client, Role::Member, PASSWORD).await;
    let port = t.base.rsplit(':').next().unwrap().to_owned();
    let resp = http_no_redirect()
        .post(format!("http://127.0.0.1:{port}/login"))
        .form(&[("user", "frank"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
}
