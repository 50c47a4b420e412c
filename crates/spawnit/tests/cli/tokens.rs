//! `spawnit token create` and `spawnit user create` through the real binary on a real store: a
//! user's token always acts as that user (its client and role); a `--client` or `--admin` that
//! contradicts the user is refused and creates nothing.

use crate::common;

use common::*;
use spawnit_store::{Collection, Store};

/// The last line of a run's stdout: where the CLI prints a token or a generated password.
fn last_line(run: &Run) -> String {
    run.stdout.lines().last().unwrap_or_default().trim().to_owned()
}

#[tokio::test]
async fn a_users_token_carries_the_users_client_and_role() {
    let w = World::new();
    let other = format!("{}-globex", w.client);
    w.ok(&["user", "create", "bob", "--client", &other, "--password", "bob-password-1"]);
    w.ok(&["user", "create", "root", "--client", "default", "--admin", "--password", "root-password-1"]);
    let store = Store::open_local(w.data_dir()).unwrap();

    // Without --client: the token is bob's, on bob's client, as a member.
    let run = w.ok(&["token", "create", "--user", "bob"]);
    let token = last_line(&run);
    assert!(run.stderr.contains(&format!("Token for user bob of client {other}")), "{run}");
    let record = spawnit_server::auth::token_verify(&store, &token).await.unwrap().expect("the printed token works");
    assert_eq!((record.user.as_str(), record.client.as_str()), ("bob", other.as_str()));
    assert_eq!(record.role, spawnit_server::accounts::Role::Member);

    // The case: a client that is not bob's, or the admin role bob does not have.
    let tokens_before = store.record_ids(Collection::Tokens).await.unwrap().len();
    let run = w.run(&["token", "create", "--user", "bob", "--client", "default"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains(&format!("user bob belongs to client {other}, not default")), "{run}");
    let run = w.run(&["token", "create", "--user", "bob", "--admin"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("user bob is a member, not an admin"), "{run}");
    let run = w.run(&["token", "create", "--user", "nobody"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("there is no user nobody"), "{run}");
    assert_eq!(store.record_ids(Collection::Tokens).await.unwrap().len(), tokens_before, "a refused token was stored");

    // What agrees with the user is accepted, and an admin's token is an admin's.
    let run = w.ok(&["token", "create", "--user", "bob", "--client", &other]);
    let record = spawnit_server::auth::token_verify(&store, &last_line(&run)).await.unwrap().unwrap();
    assert_eq!(record.client.as_str(), other);
    let run = w.ok(&["token", "create", "--user", "root", "--admin"]);
    let record = spawnit_server::auth::token_verify(&store, &last_line(&run)).await.unwrap().unwrap();
    assert_eq!((record.client.as_str(), record.role), ("default", spawnit_server::accounts::Role::Admin));
}

#[test]
fn user_create_records_an_email_for_single_sign_on_and_refuses_a_bad_one() {
    let w = World::new();
    let run = w.run(&["user", "create", "eve", "--client", &w.client, "--email", "not an address"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("email must be one address"), "{run}");
    w.ok(&["user", "create", "eve", "--client", &w.client, "--email", "eve@example.com"]);
    let record = std::fs::read_to_string(w.data_dir().join("auth/users/eve.json")).unwrap();
    assert!(
        record.contains("\"email\": \"eve@example.com\"") || record.contains("\"email\":\"eve@example.com\""),
        "{record}"
    );
}
