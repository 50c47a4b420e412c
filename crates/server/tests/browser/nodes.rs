//! The nodes pages in a real headless Chromium on a real Swarm (issue 12): an admin opens the
//! Cluster page → every node with its role, status, availability, engine and size, and the join
//! command → drains a worker with its button (confirmed) and activates it again → a worker is
//! killed and the page, never reloaded, shows it down (live: `/api/events` and the page's own
//! refresh). A member opens Nodes → rents a node with the form → sees it with its countdown and
//! the warning of a lease ending within the hour, also on the dashboard → extends it (the warning goes) → releases it.
//! Screenshots go to `target/ui-screenshots/nodes-*.png`.

use crate::common;

use std::time::Duration;

use common::browser::*;
use common::cluster::*;
use common::*;
use fantoccini::{Client, Locator};
use spawnit_server::accounts::Role;

const PASSWORD: &str = "browser-nodes-password";

async fn sign_in(c: &Client, t: &TestServer, user: &str) {
    c.goto(&t.url("/login")).await.unwrap();
    fill(c, "#user", user).await;
    fill(c, "#password", PASSWORD).await;
    click(c, "main form button[type=submit]").await;
    wait_text(c, "main h1", "dashboard", Duration::from_secs(10), |t| t == "My services").await;
}

/// Clicks a button of a form that asks first (`data-confirm`) and accepts the question.
async fn click_confirmed(c: &Client, css: &str) {
    click(c, css).await;
    c.accept_alert().await.unwrap_or_else(|e| panic!("no confirmation after clicking {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_page_lists_nodes_live_and_a_member_rents_extends_and_releases() {
    let swarm = swarm_start("browser", 3).await;
    let t = server_on(&swarm).await;
    t.user("root", "default", Role::Admin, PASSWORD).await;
    t.user("renter", &t.client, Role::Member, PASSWORD).await;
    let nodes = t
        .nodes_until("3 ready nodes", Duration::from_secs(30), |n| {
            n.len() == 3 && n.iter().all(|n| n["status"] == "ready")
        })
        .await;
    let worker = nodes.iter().find(|n| n["role"] == "worker").unwrap();
    let (id, hostname) = (worker["id"].as_str().unwrap().to_owned(), worker["hostname"].as_str().unwrap().to_owned());
    let driver = chromedriver().await;
    let c = browser(&driver).await;

    // The admin's cluster page: every node, the join command.
    sign_in(&c, &t, "root").await;
    click(&c, "a[href='/admin/nodes']").await;
    wait_text(&c, "main h1", "cluster page", Duration::from_secs(10), |t| t == "Cluster").await;
    let table = wait_text(&c, "#node-table", "the nodes", Duration::from_secs(10), |t| {
        swarm.nodes().iter().all(|n| t.contains(&n.hostname))
    })
    .await;
    for part in ["manager (leader)", "worker", "ready", "active", "pool", "CPU"] {
        assert!(table.contains(part), "{part} is not in the table: {table}");
    }
    let join = c.find(Locator::Css("#join-worker")).await.unwrap().text().await.unwrap();
    assert!(join.starts_with("docker swarm join --token SWMTKN-") && join.trim_end().ends_with(":2377"), "{join}");
    shot(&c, "nodes-01-cluster").await;

    // Drain a worker with its button, then activate it.
    let row = format!("tr[data-node='{id}']");
    click_confirmed(&c, &format!("{row} form[action$='/drain'] button")).await;
    wait_text(&c, &format!("{row} .node-availability"), "drained", Duration::from_secs(15), |t| t == "drain").await;
    assert!(c.find(Locator::Css("p.notice")).await.unwrap().text().await.unwrap().contains(&hostname));
    shot(&c, "nodes-02-drained").await;
    click(&c, &format!("{row} form[action$='/activate'] button")).await;
    wait_text(&c, &format!("{row} .node-availability"), "active again", Duration::from_secs(15), |t| t == "active")
        .await;
    assert_eq!(t.nodes().await.iter().find(|n| n["id"] == id.as_str()).unwrap()["availability"], "active");

    // Live: a worker killed shows down on the page as it is, never reloaded.
    c.goto(&t.url("/admin/nodes")).await.unwrap();
    c.execute("window.spawnitMarker = 42", vec![]).await.unwrap();
    let victim = swarm.nodes().iter().position(|n| n.hostname == hostname).unwrap();
    tokio::task::block_in_place(|| swarm.node_kill(victim)).unwrap();
    wait_text(&c, &format!("{row} .node-status"), "the node down, live", Duration::from_secs(60), |t| t == "down")
        .await;
    let marker = c.execute("return window.spawnitMarker", vec![]).await.unwrap();
    assert_eq!(marker, serde_json::json!(42), "the page was reloaded instead of updated");
    shot(&c, "nodes-03-node-down-live").await;
    c.close().await.unwrap();

    // A member rents the other worker from the Nodes page.
    let c = browser(&driver).await;
    sign_in(&c, &t, "renter").await;
    click(&c, "a[href='/nodes']").await;
    wait_text(&c, "main h1", "nodes page", Duration::from_secs(10), |h| h.starts_with("Nodes of")).await;
    assert!(c.find(Locator::Css("#no-leases")).await.is_ok(), "no lease yet");
    fill(&c, "#rent-count", "1").await;
    c.find(Locator::Css("#rent-ttl")).await.unwrap().select_by_value("1h").await.unwrap();
    click(&c, "#rent button[type=submit]").await;
    let notice = wait_text(&c, "p.notice", "rented", Duration::from_secs(15), |t| t.starts_with("Rented 1 node")).await;
    let leases = t.get("/api/leases").await.1;
    let rented = leases["leases"][0]["hostname"].as_str().unwrap_or_else(|| panic!("{leases}")).to_owned();
    let node_id = leases["leases"][0]["node_id"].as_str().unwrap().to_owned();
    assert!(notice.contains(&rented), "{notice}");
    let lease_row = format!("tr[data-lease='{node_id}']");
    let text = wait_text(&c, &lease_row, "the lease row", Duration::from_secs(10), |t| t.contains(&rented)).await;
    assert!(text.contains("ends soon"), "a lease of one hour warns: {text}");
    assert!(
        c.find(Locator::Css(&format!("{lease_row} .countdown")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .starts_with("0h 59m")
    );
    shot(&c, "nodes-04-rented").await;
    // The dashboard warns too.
    c.goto(&t.url("/")).await.unwrap();
    let warning = wait_text(&c, "#my-nodes .expiry-warning", "the dashboard's warning", Duration::from_secs(10), |t| {
        t.contains(&rented)
    })
    .await;
    assert!(warning.contains("ends in 0h 59m"), "{warning}");
    shot(&c, "nodes-04b-dashboard-warning").await;
    c.goto(&t.url("/nodes")).await.unwrap();
    wait_text(&c, &lease_row, "the lease row again", Duration::from_secs(10), |t| t.contains(&rented)).await;

    // Extend: the warning goes.
    c.find(Locator::Css(&format!("{lease_row} select[name=by]"))).await.unwrap().select_by_value("2h").await.unwrap();
    click(&c, &format!("{lease_row} form[action*='/extend'] button")).await;
    wait_text(&c, "p.notice", "extended", Duration::from_secs(15), |t| t.contains("now ends at")).await;
    let text = c.find(Locator::Css(&lease_row)).await.unwrap().text().await.unwrap();
    assert!(!text.contains("ends soon") && text.contains("2h 59m"), "{text}");
    shot(&c, "nodes-05-extended").await;

    // Release (confirmed): no lease left.
    click_confirmed(&c, &format!("{lease_row} form[action*='/release'] button")).await;
    wait_text(&c, "p.notice", "released", Duration::from_secs(15), |t| t.starts_with("Released")).await;
    assert!(c.find(Locator::Css("#no-leases")).await.is_ok(), "the lease is gone from the page");
    assert_eq!(t.get("/api/leases").await.1["leases"], serde_json::json!([]));
    shot(&c, "nodes-06-released").await;
    c.close().await.unwrap();
    drop(driver);
}
