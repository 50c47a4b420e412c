//! OIDC sign-in end to end against a real OpenID provider on loopback (`oidc-provider-mock`
//! from PyPI, installed by scripts/test.sh): authorization code + PKCE + state + nonce, the ID
//! token checked against the provider's JWKS, users mapped to a client by a claim or by an admin.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use spawnit_server::auth::Role;
use spawnit_server::oidc::OidcConfig;

struct Provider {
    _child: tokio::process::Child,
    issuer: String,
}

async fn provider() -> Provider {
    let port = free_port();
    let child = tokio::process::Command::new("oidc-provider-mock")
        .args(["--port", &port.to_string(), "--require-nonce", "true"])
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
    let http = http_no_redirect();
    let start = http.get(t.url("/auth/oidc/start?next=/catalog")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let state_cookie = set_cookies(&start).into_iter().find(|c| c.starts_with("spawnit_oidc_state=")).unwrap();
    let authorize = location(&start);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_with_pkce_nonce_and_client_mapping() {
    let p = provider().await;
    let issuer = p.issuer.clone();
    let t = TestServer::start(move |c| {
        c.oidc = Some(OidcConfig {
            issuer,
            client_id: "spawnit-test".into(),
            client_secret: "spawnit-test-secret".into(),
            client_claim: Some("spawnit_client".into()),
            public_url: None,
        })
    })
    .await;
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

    // Mapped by an admin: a user created without a password is linked on first sign-in.
    t.user("root", "default", Role::Admin, "admin-password-1").await;
    let admin = t.sign_in("root", "admin-password-1").await;
    let mapped = client_unique();
    let r = http
        .post(t.url("/api/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"name": "nobody", "client": mapped}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (loc, cookies, _) = sign_in_as(&t, "nobody-sub").await;
    assert_eq!(loc, "/catalog");
    let session = cookies.iter().find(|c| c.starts_with("spawnit_session=")).unwrap().clone();
    let me: Value = http.get(t.url("/api/me")).header("cookie", &session).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["client"], mapped.as_str());

    // The audit log has the OIDC sign-ins and the refusal.
    let (_, audit) = t.page(Some(&admin), "/api/audit").await;
    assert!(audit.contains("\"oidc\"") && audit.contains("sign_in_failed"), "{audit}");
}
