//! OIDC sign-in end to end against a real OpenID provider on loopback (`oidc-provider-mock`
//! from PyPI, installed by scripts/test.sh): authorization code + PKCE + state + nonce, the ID
//! token checked against the provider's JWKS, users mapped to a client by a claim or by an admin.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use common::*;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;
use spawnit_server::oidc::OidcConfig;

struct Provider {
    _child: tokio::process::Child,
    issuer: String,
}

async fn provider() -> Provider {
    provider_with(&[]).await
}

/// The provider, with more command-line options (e.g. `--token-max-age=-120`).
async fn provider_with(extra: &[&str]) -> Provider {
    let port = free_port();
    let child = tokio::process::Command::new("oidc-provider-mock")
        .args(["--port", &port.to_string(), "--require-nonce", "true"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start oidc-provider-mock ({e}): run scripts/test.sh, which installs it from PyPI")
        });
    let issuer = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{issuer}/.well-known/openid-configuration")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "oidc-provider-mock did not start on {issuer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Provider { _child: child, issuer }
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Runs the browser's side of a sign-in as `sub`: returns the callback answer's location and
/// cookies, plus what replaying the callback gives.
async fn sign_in_as(t: &TestServer, sub: &str) -> (String, Vec<String>, String) {
    sign_in_with(t, sub, "/catalog", |u| u).await
}

/// [`sign_in_as`], starting with `next` (URL-encoded) and letting the browser change the
/// authorization URL (`rewrite`) before it goes to the provider.
async fn sign_in_with(
    t: &TestServer,
    sub: &str,
    next: &str,
    rewrite: impl Fn(String) -> String,
) -> (String, Vec<String>, String) {
    let http = http_no_redirect();
    let start = http.get(t.url(&format!("/auth/oidc/start?next={next}"))).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let state_cookie = set_cookies(&start).into_iter().find(|c| c.starts_with("spawnit_oidc_state=")).unwrap();
    let authorize = rewrite(location(&start));
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="), "{authorize}");
    // The person picks their account at the provider.
    let answer = http.post(&authorize).form(&[("sub", sub)]).send().await.unwrap();
    assert!(answer.status().is_redirection(), "{}", answer.text().await.unwrap());
    let callback = location(&answer);
    assert!(callback.starts_with(&t.url("/auth/oidc/callback?")), "{callback}");
    // Without the browser's state cookie, the callback is refused.
    let stolen = http.get(&callback).send().await.unwrap();
    assert_eq!(stolen.status(), 303);
    assert!(location(&stolen).starts_with("/login?error="), "{}", location(&stolen));
    let done = http.get(&callback).header("cookie", &state_cookie).send().await.unwrap();
    let loc = location(&done);
    let cookies = set_cookies(&done);
    // Replaying the callback does not sign in again.
    let replay = http.get(&callback).header("cookie", &state_cookie).send().await.unwrap();
    (loc, cookies, location(&replay))
}

/// SpawnIt's OIDC settings for the test client `spawnit-test` of the provider at `issuer`.
fn oidc_config(issuer: String, client_claim: Option<&str>) -> OidcConfig {
    OidcConfig {
        issuer,
        client_id: "spawnit-test".into(),
        client_secret: "spawnit-test-secret".into(),
        client_claim: client_claim.map(Into::into),
        public_url: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_with_pkce_nonce_and_client_mapping() {
    let p = provider().await;
    let issuer = p.issuer.clone();
    let t = TestServer::start(move |c| c.oidc = Some(oidc_config(issuer, Some("spawnit_client")))).await;
    let http = reqwest::Client::new();
    let (_, login) = t.page(None, "/login").await;
    assert!(login.contains("Sign in with single sign-on"), "{login}");

    // Mapped by a claim: a new member of the claimed client.
    let r = http
        .put(format!("{}/users/olivia-sub", p.issuer))
        .json(&json!({"preferred_username": "olivia", "email": "olivia@example.com", "spawnit_client": t.client}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (loc, cookies, replay) = sign_in_as(&t, "olivia-sub").await;
    assert_eq!(loc, "/catalog");
    assert!(replay.starts_with("/login?error="), "a replayed callback signed in: {replay}");
    let session = cookies.iter().find(|c| c.starts_with("spawnit_session=")).expect("a session cookie").clone();
    let me: Value = http.get(t.url("/api/me")).header("cookie", &session).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["user"], "olivia");
    assert_eq!(me["client"], t.client.as_str());
    assert_eq!(me["role"], "member");
    let page = http.get(t.url("/")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("olivia"), "{page}");
    // The second time, the linked user is found again.
    let (loc, cookies, _) = sign_in_as(&t, "olivia-sub").await;
    assert_eq!(loc, "/catalog");
    assert!(cookies.iter().any(|c| c.starts_with("spawnit_session=")));

    // Without the claim and without an admin's mapping: refused with a message.
    http.put(format!("{}/users/nobody-sub", p.issuer))
        .json(&json!({"preferred_username": "nobody"}))
        .send()
        .await
        .unwrap();
    let (loc, cookies, _) = sign_in_as(&t, "nobody-sub").await;
    assert!(loc.starts_with("/login?error="), "{loc}");
    assert!(!cookies.iter().any(|c| c.starts_with("spawnit_session=")));
    let (_, page) = t.page(None, &loc).await;
    assert!(page.contains("not mapped to a SpawnIt client") && page.contains("ask an admin"), "{page}");

    // Mapped by an admin: a user recorded with the person's verified e-mail address is linked
    // on first sign-in.
    t.user("root", "default", Role::Admin, "admin-password-1").await;
    let admin = t.sign_in("root", "admin-password-1").await;
    let mapped = client_unique();
    let r = http
        .post(t.url("/api/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"name": "nobody", "client": mapped, "email": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    http.put(format!("{}/users/nobody-sub", p.issuer))
        .json(&json!({"preferred_username": "nobody", "email": "nobody@example.com", "email_verified": true}))
        .send()
        .await
        .unwrap();
    let (loc, cookies, _) = sign_in_as(&t, "nobody-sub").await;
    assert_eq!(loc, "/catalog");
    let session = cookies.iter().find(|c| c.starts_with("spawnit_session=")).unwrap().clone();
    let me: Value = http.get(t.url("/api/me")).header("cookie", &session).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["client"], mapped.as_str());

    // The audit log has the OIDC sign-ins and the refusal.
    let (_, audit) = t.page(Some(&admin), "/api/audit").await;
    assert!(audit.contains("\"oidc\"") && audit.contains("sign_in_failed"), "{audit}");
}

/// Creates, as admin `root`, the user `name` of `client` with no password and `email`.
async fn sso_user_create(t: &TestServer, admin: &Session, name: &str, client: &str, email: &str) {
    let r = reqwest::Client::new()
        .post(t.url("/api/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"name": name, "client": client, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Registers a person at the provider.
async fn provider_user(p: &Provider, sub: &str, claims: Value) {
    let r = reqwest::Client::new().put(format!("{}/users/{sub}", p.issuer)).json(&claims).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// The user `name` as `GET /api/users` shows it.
async fn user_view(t: &TestServer, admin: &Session, name: &str) -> Value {
    let (_, body) = t.page(Some(admin), "/api/users").await;
    let users: Value = serde_json::from_str(&body).unwrap();
    users["users"].as_array().unwrap().iter().find(|u| u["name"] == name).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_links_only_by_subject_or_a_verified_email_the_admin_recorded() {
    let p = provider().await;
    let issuer = p.issuer.clone();
    let t = TestServer::start(move |c| c.oidc = Some(oidc_config(issuer, None))).await;
    t.user("root", "default", Role::Admin, "admin-password-1").await;
    let admin = t.sign_in("root", "admin-password-1").await;
    sso_user_create(&t, &admin, "alice", &t.client, "alice@example.com").await;

    // People who chose names that reduce to `alice`, or claim her address unverified: refused,
    // and alice stays unlinked.
    let attackers = [
        ("mallory-1", json!({"preferred_username": "Alice_", "email": "alice@other.org", "email_verified": true})),
        ("mallory-2", json!({"preferred_username": "alice", "email": "alice@example.com", "email_verified": false})),
        ("mallory-3", json!({"preferred_username": "alice."})),
        ("mallory-4", json!({"preferred_username": "ALICE", "email": "Alice@example.com", "email_verified": true})),
    ];
    for (sub, claims) in attackers {
        provider_user(&p, sub, claims).await;
        let (loc, cookies, _) = sign_in_as(&t, sub).await;
        assert!(loc.starts_with("/login?error="), "{sub} signed in: {loc}");
        assert!(!cookies.iter().any(|c| c.starts_with("spawnit_session=")), "{sub} got a session");
        let (_, page) = t.page(None, &loc).await;
        assert!(page.contains("ask an admin"), "{page}");
        assert_eq!(user_view(&t, &admin, "alice").await["oidc"], false, "{sub} took over alice");
    }

    // Alice herself, with the address the admin recorded, verified: linked and signed in. The
    // `next` she came with is followed only when it is a path of this site.
    provider_user(
        &p,
        "alice-sub",
        json!({"preferred_username": "a.liddell", "email": "alice@example.com", "email_verified": true}),
    )
    .await;
    let (loc, cookies, _) = sign_in_with(&t, "alice-sub", "%2F%09%2Fevil.example", |u| u).await;
    assert_eq!(loc, "/", "the sign-in went to {loc:?}");
    let session = cookies.iter().find(|c| c.starts_with("spawnit_session=")).expect("alice signed in").clone();
    let me: Value = reqwest::Client::new()
        .get(t.url("/api/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((me["user"].as_str(), me["client"].as_str()), (Some("alice"), Some(t.client.as_str())));
    assert_eq!(user_view(&t, &admin, "alice").await["oidc"], true);
    let (loc, _, _) = sign_in_with(&t, "alice-sub", "%2Fnetworks", |u| u).await;
    assert_eq!(loc, "/networks", "a local next is followed");

    // Linked by iss+sub from now on: another account with alice's verified address is refused.
    provider_user(&p, "mallory-5", json!({"email": "alice@example.com", "email_verified": true})).await;
    let (loc, cookies, _) = sign_in_as(&t, "mallory-5").await;
    assert!(loc.starts_with("/login?error="), "{loc}");
    assert!(!cookies.iter().any(|c| c.starts_with("spawnit_session=")));
    let (_, page) = t.page(None, &loc).await;
    assert!(page.contains("linked to another single sign-on account"), "{page}");
}

/// What the loopback proxy in front of the provider does to a sign-in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Forge {
    /// Passes everything through.
    Nothing,
    /// Changes the ID token's `sub` and keeps the provider's signature.
    TamperedPayload,
    /// Strips the signature and says `alg: none`.
    AlgNone,
    /// Signs the ID token with HS256, the provider's public key as the secret.
    AlgHs256,
    /// Exchanges the code as another client (the browser authorized that client), so the
    /// provider signs an ID token for another audience.
    OtherAudience,
}

/// A proxy on loopback in front of one or more providers: SpawnIt's issuer is the proxy's URL
/// (the provider takes its issuer from the Host header, which the proxy keeps), so discovery,
/// authorization, token exchange and keys all pass through it, and it can change the token
/// answer as an attacker between SpawnIt and the provider would.
struct Proxy {
    url: String,
    mode: std::sync::Arc<std::sync::Mutex<(String, Forge)>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = std::sync::Arc::new(std::sync::Mutex::new((upstream.to_owned(), Forge::Nothing)));
        let state = mode.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = state.clone();
            async move { forward(state, req).await }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy { url, mode, _task: task }
    }

    fn set(&self, upstream: &str, forge: Forge) {
        *self.mode.lock().unwrap() = (upstream.to_owned(), forge);
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

async fn forward(
    mode: std::sync::Arc<std::sync::Mutex<(String, Forge)>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (upstream, forge) = mode.lock().unwrap().clone();
    let (parts, body) = req.into_parts();
    let mut body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    let is_token = parts.method == axum::http::Method::POST && parts.uri.path() == "/oauth2/token";
    let mut headers = parts.headers.clone();
    if is_token && forge == Forge::OtherAudience {
        let form = String::from_utf8(body).unwrap().replace("client_id=spawnit-test", "client_id=other-client");
        body = form.into_bytes();
        let basic = {
            use base64::Engine as _;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(b"other-client:other-secret"))
        };
        headers.insert("authorization", basic.parse().unwrap());
        headers.remove("content-length");
    }
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = http
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let mut out_headers = axum::http::HeaderMap::new();
    for name in ["content-type", "location", "set-cookie"] {
        for v in resp.headers().get_all(name) {
            out_headers.append(axum::http::HeaderName::from_static(name), v.clone());
        }
    }
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if is_token && status.is_success() && !matches!(forge, Forge::Nothing | Forge::OtherAudience) {
        let mut answer: Value = serde_json::from_slice(&bytes).unwrap();
        let token = answer["id_token"].as_str().expect("an id_token").to_owned();
        let jwks: Value = reqwest::get(format!("{upstream}/jwks")).await.unwrap().json().await.unwrap();
        answer["id_token"] = Value::String(forged(&token, forge, &jwks));
        bytes = serde_json::to_vec(&answer).unwrap();
    }
    (status, out_headers, bytes).into_response()
}

/// The provider's genuine `token`, changed as `forge` says.
fn forged(token: &str, forge: Forge, jwks: &Value) -> String {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let header_json: Value = serde_json::from_slice(&b64url_decode(header)).unwrap();
    let mut claims: Value = serde_json::from_slice(&b64url_decode(payload)).unwrap();
    assert_eq!(header_json["alg"], "RS256", "the provider signs with RS256: {header_json}");
    match forge {
        Forge::TamperedPayload => {
            claims["sub"] = Value::String("someone-else".into());
            format!("{header}.{}.{signature}", b64url(&serde_json::to_vec(&claims).unwrap()))
        }
        Forge::AlgNone => {
            let none = b64url(&serde_json::to_vec(&json!({"alg": "none", "typ": "JWT"})).unwrap());
            format!("{none}.{payload}.")
        }
        Forge::AlgHs256 => {
            let public = jwks["keys"][0]["n"].as_str().unwrap();
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = header_json["kid"].as_str().map(str::to_owned);
            jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(&b64url_decode(public))).unwrap()
        }
        Forge::Nothing | Forge::OtherAudience => token.to_owned(),
    }
}

/// Asserts that a sign-in (as [`sign_in_with`] returns it) was refused for an invalid ID token
/// and says `reason`.
async fn assert_refused(t: &TestServer, what: &str, reason: &str, (loc, cookies, _): (String, Vec<String>, String)) {
    assert!(loc.starts_with("/login?error="), "{what}: signed in ({loc})");
    assert!(!cookies.iter().any(|c| c.starts_with("spawnit_session=")), "{what}: a session was given");
    let (_, page) = t.page(None, &loc).await;
    assert!(page.contains("the ID token is not valid"), "{what}: {page}");
    assert!(page.contains(reason), "{what}: the reason is not {reason:?}: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_refuses_forged_or_wrong_id_tokens() {
    let p = provider().await;
    let expired = provider_with(&["--token-max-age=-120"]).await;
    let proxy = Proxy::start(&p.issuer).await;
    let issuer = proxy.url.clone();
    let t = TestServer::start(move |c| c.oidc = Some(oidc_config(issuer, Some("spawnit_client")))).await;
    for provider in [&p, &expired] {
        provider_user(provider, "olga-sub", json!({"preferred_username": "olga", "spawnit_client": t.client})).await;
    }
    // Positive control: through the proxy, untouched, the sign-in works.
    let (loc, cookies, _) = sign_in_as(&t, "olga-sub").await;
    assert_eq!(loc, "/catalog");
    assert!(cookies.iter().any(|c| c.starts_with("spawnit_session=")));

    proxy.set(&p.issuer, Forge::TamperedPayload);
    assert_refused(&t, "a tampered payload", "bad signature", sign_in_as(&t, "olga-sub").await).await;
    proxy.set(&p.issuer, Forge::AlgNone);
    assert_refused(&t, "alg none", "not valid", sign_in_as(&t, "olga-sub").await).await;
    proxy.set(&p.issuer, Forge::AlgHs256);
    assert_refused(&t, "alg HS256", "Disallowed signature algorithm", sign_in_as(&t, "olga-sub").await).await;
    proxy.set(&p.issuer, Forge::OtherAudience);
    let other_client = |u: String| u.replace("client_id=spawnit-test", "client_id=other-client");
    assert_refused(
        &t,
        "another audience",
        "Invalid audiences",
        sign_in_with(&t, "olga-sub", "/catalog", other_client).await,
    )
    .await;
    // The browser (or an attacker in its place) swaps the nonce: the provider signs the token
    // with that nonce, which is not this sign-in's.
    proxy.set(&p.issuer, Forge::Nothing);
    let other_nonce = |u: String| {
        let start = u.find("nonce=").unwrap() + "nonce=".len();
        let end = u[start..].find('&').map_or(u.len(), |e| start + e);
        format!("{}someoneelsesnonce{}", &u[..start], &u[end..])
    };
    assert_refused(&t, "a wrong nonce", "nonce mismatch", sign_in_with(&t, "olga-sub", "/catalog", other_nonce).await)
        .await;
    // A provider whose tokens expired two minutes before they were issued.
    proxy.set(&expired.issuer, Forge::Nothing);
    assert_refused(&t, "an expired token", "ID token expired", sign_in_as(&t, "olga-sub").await).await;

    // And the proxy still passes a good sign-in (the refusals were the forgeries' doing).
    proxy.set(&p.issuer, Forge::Nothing);
    let (loc, _, _) = sign_in_as(&t, "olga-sub").await;
    assert_eq!(loc, "/catalog");
}
