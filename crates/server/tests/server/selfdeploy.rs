//! The self-deployment template `spawnit` is admin-only: an admin lists, reads and uses it; for a
//! member it does not exist — absent from the catalog's API and pages, a 404 like an unknown
//! template, and a create from it (API or form) refused with nothing stored. A member cannot
//! change the parameters of such a service an admin made in their client either.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;

use crate::common::*;

const PASSWORD: &str = "correct horse battery";

/// An API call with a bearer token.
async fn call_as(t: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = t.http.request(method, t.url(path)).bearer_auth(token).timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("answer");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn template_ids(catalog: &Value) -> Vec<String> {
    catalog["templates"].as_array().expect("templates").iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// The service names a member's store holds (what a refused create must not add to).
fn stored_services(t: &TestServer, client: &str) -> Vec<String> {
    let dir = t.dir.path().join("clients").join(client).join("services");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_only_template_does_not_exist_for_a_member() {
    let t = TestServer::start(|_| {}).await;
    let member_token = t.token.clone();

    // An admin has it, flagged, in the API and on the pages.
    let (status, catalog) = call_as(&t, &t.admin, Method::GET, "/api/catalog", None).await;
    assert_eq!(status, 200, "{catalog}");
    let entry = catalog["templates"].as_array().unwrap().iter().find(|e| e["id"] == "spawnit").cloned();
    let entry = entry.unwrap_or_else(|| panic!("an admin's catalog lacks spawnit: {catalog}"));
    assert_eq!(entry["admin_only"], true, "{entry}");
    let (status, template) = call_as(&t, &t.admin, Method::GET, "/api/catalog/spawnit", None).await;
    assert_eq!(status, 200, "{template}");
    assert_eq!(template["admin_only"], true);
    assert_eq!(template["blueprint"]["containers"]["server"]["docker_socket"], true);
    t.user("root", "default", Role::Admin, PASSWORD).await;
    let root = t.sign_in("root", PASSWORD).await;
    let (status, page) = t.page(Some(&root), "/catalog").await;
    assert_eq!(status, 200);
    assert!(page.contains("/catalog/spawnit"), "the admin's catalog page lacks spawnit");
    assert_eq!(t.page(Some(&root), "/catalog/spawnit").await.0, 200);

    // A member: not listed, not found (the same answer as a template that does not exist).
    let (status, catalog) = call_as(&t, &member_token, Method::GET, "/api/catalog", None).await;
    assert_eq!(status, 200, "{catalog}");
    let ids = template_ids(&catalog);
    assert!(ids.contains(&"hello".to_owned()), "{ids:?}");
    assert!(!ids.contains(&"spawnit".to_owned()), "a member sees spawnit: {ids:?}");
    assert!(!catalog.to_string().contains("self-deployment"), "{catalog}");
    let (status, hidden) = call_as(&t, &member_token, Method::GET, "/api/catalog/spawnit", None).await;
    let (unknown_status, unknown) = call_as(&t, &member_token, Method::GET, "/api/catalog/nosuch", None).await;
    assert_eq!((status, unknown_status), (404, 404), "{hidden} / {unknown}");
    assert_eq!(hidden["error"]["code"], unknown["error"]["code"]);
    assert_eq!(
        hidden["error"]["message"].as_str().unwrap().replacen("template spawnit", "template nosuch", 1),
        unknown["error"]["message"].as_str().unwrap()
    );
    t.user("bob", &t.client, Role::Member, PASSWORD).await;
    let bob = t.sign_in("bob", PASSWORD).await;
    let (status, page) = t.page(Some(&bob), "/catalog").await;
    assert_eq!(status, 200);
    assert!(page.contains("/catalog/hello"), "the member's catalog page is empty");
    assert!(!page.contains("/catalog/spawnit") && !page.contains("self-deployment"), "a member's page shows spawnit");
    assert_eq!(t.page(Some(&bob), "/catalog/spawnit").await.0, 404);

    // A member's create from it is refused like an unknown template, and stores nothing.
    let before = stored_services(&t, &t.client);
    let create = json!({"template": "spawnit", "name": "mine", "params": {"http_port": free_port()}});
    let (status, body) = call_as(&t, &member_token, Method::POST, "/api/services", Some(create)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, form) = t
        .form(
            Some(&bob),
            "/catalog/spawnit",
            &[("name", "mine2"), ("network", "default"), ("action", "save")],
            Some(&bob.csrf),
        )
        .await;
    assert_eq!(status, 404, "{form}");
    assert_eq!(stored_services(&t, &t.client), before, "a refused create stored something");
    let (_, list) = call_as(&t, &member_token, Method::GET, "/api/services", None).await;
    assert_eq!(list["services"], json!([]), "{list}");

    // An admin may make one in the member's client; the member cannot change what it runs.
    let port = free_port();
    let create = json!({"template": "spawnit", "name": "platform", "params": {"http_port": port}});
    let path = format!("/api/services?client={}", t.client);
    let (status, body) = call_as(&t, &t.admin, Method::POST, &path, Some(create)).await;
    assert_eq!(status, 201, "{body}");
    let change = json!({"params": {"image": "busybox:latest"}});
    let (status, body) =
        call_as(&t, &member_token, Method::PATCH, "/api/services/platform", Some(change.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Docker socket"), "{body}");
    let (status, shown) = call_as(&t, &member_token, Method::GET, "/api/services/platform", None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["params"]["image"], "spawnit:latest", "{shown}");
    let path = format!("/api/services/platform?client={}", t.client);
    let (status, body) = call_as(&t, &t.admin, Method::PATCH, &path, Some(json!({"params": {"replicas": 3}}))).await;
    assert_eq!(status, 200, "an admin changes it: {body}");
}
