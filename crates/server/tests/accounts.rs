//! Accounts, sessions, CSRF, the audit log, API tokens and tenant isolation, over real HTTP
//! against a real server (pages and API): every route as another client's member, as a member
//! on admin routes and anonymously is refused with no data; secrets never appear anywhere.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use spawnit_server::auth::Role;

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
        stored.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_matrix_every_route_refuses_other_clients_members_and_anonymous() {
    let t = TestServer::start(|_| {}).await;
    let victim = t.client.clone();
    let other = client_unique();
    t.user("victim", &victim, Role::Member, PASSWORD).await;
    t.user("mallory", &other, Role::Member, PASSWORD).await;
    let marker = "victim-private-message-4242";
    let port = t.hello("secretsvc", marker).await;
    let job = t.post("/api/services/secretsvc/plan", empty()).await.1;
    let job_id = job["id"].as_str().unwrap().to_owned();
    // A job that stays queued (behind a long one) so cancel would have something to do.
    let _ = port;
    let mallory = t.sign_in("mallory", PASSWORD).await;
    let fill = |p: &str| p.replace("{svc}", "secretsvc").replace("{job}", &job_id).replace("{client}", &victim);

    // Pages as another client's member: 404 (or 403 on admin pages), never the victim's data.
    for p in PAGES_GET {
        let path = fill(p);
        let (status, body) = t.page(Some(&mallory), &path).await;
        let allowed = match *p {
            "/" | "/catalog" | "/catalog/hello" | "/networks" | "/tokens" => status == 200,
            "/admin" => status == 403,
            _ => status == 404,
        };
        assert!(allowed, "GET {path} as another client's member: {status}");
        assert!(
            !body.contains(marker) && !body.contains("secretsvc") || status == 404 && !body.contains(marker),
            "GET {path} leaks: {body}"
        );
        assert!(!body.contains(marker), "GET {path} leaks the victim's data");
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

    // Every API route: as another client's member (token and session), as a member on admin
    // routes, and anonymously.
    let doc: Value = reqwest::get(t.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    let other_token =
        spawnit_server::auth::token_create(&store, "mallory", &spawnit_model::Id::parse(&other).unwrap(), Role::Member)
            .await
            .unwrap();
    let victim_token_id: String = {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(t.token.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..40].to_owned()
    };
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") || path == "/api/openapi.json" {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let id = if path.starts_with("/api/jobs") {
                job_id.clone()
            } else if path.starts_with("/api/tokens") {
                victim_token_id.clone()
            } else {
                "secretsvc".to_owned()
            };
            let base = path.replace("{template}", "hello").replace("{id}", &id);
            let with_client =
                if base.contains('?') { format!("{base}&client={victim}") } else { format!("{base}?client={victim}") };
            let body = json!({"name": "x", "template": "hello", "client": victim, "password": "whatever-password", "ttl": "1h"});
            // Anonymous.
            let resp = http.request(m.clone(), t.url(&with_client)).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 401, "anonymous {method} {path}");
            let text = resp.text().await.unwrap();
            assert!(!text.contains(marker) && !text.contains("secretsvc"), "anonymous {method} {path} leaks: {text}");
            // Another client's member, by token, asking for the victim's client.
            if path == "/api/events" {
                continue; // a stream: checked below
            }
            let resp = http
                .request(m.clone(), t.url(&with_client))
                .bearer_auth(&other_token)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(marker), "{method} {path} as another client's member leaks: {text}");
            let own_scope =
                ["/api/catalog", "/api/catalog/{template}", "/api/me", "/api/tokens", "/api/tokens/{id}", "/api/jobs"];
            if own_scope.contains(&path.as_str()) {
                assert!(!text.contains("secretsvc"), "{method} {path} as another member lists the victim's: {text}");
            } else if ["/api/users", "/api/audit"].contains(&path.as_str()) {
                assert_eq!(status, 403, "{method} {path} as a member: {text}");
            } else {
                // 404, or a 422 about the shape of the body (refused before anything is read).
                let body_refused = status == 422 && text.contains("invalid request body");
                assert!(status == 404 || body_refused, "{method} {path} as another client's member: {status} {text}");
            }
            // Same, by session, without naming the client: the victim's ids do not exist.
            let resp = http
                .request(m.clone(), t.url(&base))
                .header("cookie", &mallory.cookie)
                .header("x-csrf-token", &mallory.csrf)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(marker), "{method} {path} by session leaks: {text}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
    // The event stream shows another client nothing of the victim's.
    let resp =
        http.get(t.url("/api/events")).bearer_auth(&other_token).timeout(Duration::from_secs(3)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = t.post("/api/services/secretsvc/plan", empty()).await;
    let text = match tokio::time::timeout(Duration::from_secs(3), resp.text()).await {
        Ok(Ok(t)) => t,
        _ => String::new(),
    };
    assert!(!text.contains("secretsvc"), "the event stream leaks: {text}");

    // The victim's service, token and job are intact.
    let (status, svc) = t.get("/api/services/secretsvc").await;
    assert_eq!(status, 200, "{svc}");
    let (status, job) = t.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, 200);
    assert_ne!(job["status"], "cancelled", "another client cancelled the victim's job");
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
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
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
    let job = t.post("/api/services/cache/plan", empty()).await.1;
    let record = t.job_wait(&job).await;
    let mut seen = record.to_string();
    let mut events = t.sse(&format!("/api/jobs/{}/events", job["id"].as_str().unwrap()), None).await;
    let (_, before) = events.until(Duration::from_secs(10), "finished", |e| e.event == "finished").await;
    seen.push_str(&format!("{before:?}"));
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
        seen.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
    }
    let log_text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(log_text.contains("log capture on"), "logs are not captured");
    assert!(!log_text.contains(secret), "the secret appears in a log line");
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
    ] {
        let template = json!({
            "id": "evil", "name": "Evil", "category": "demo", "description": "", "version": "1",
            "parameters": {}, "blueprint": {"containers": {"c": bad}}
        });
        let t: spawnit_model::Template = serde_json::from_value(template).unwrap();
        let rendered = spawnit_engine::render::template_check(&t);
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
