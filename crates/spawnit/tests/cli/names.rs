//! Docker object names never collide across tenants, and SpawnIt never takes over an object
//! that belongs to someone else (issue 8, item 1), through the real `spawnit` binary on the real
//! Docker engine.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A base id unique to this run (digits and letters only, so `-` joins are ours).
fn base() -> String {
    format!("n{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A world (own store, cleaned up by its client's labels) for `client`.
fn world_as(client: String) -> World {
    docker_required();
    World { dir: tempfile::tempdir().expect("temp dir"), client }
}

fn labelled_volumes(client: &str, service: &str) -> Vec<String> {
    let out = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=spawnit.client={client}"),
        "--filter",
        &format!("label=spawnit.service={service}"),
    ]);
    out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

fn deploy_redis(w: &World, service: &str) -> Run {
    w.ok(&["create", "redis", service, "--set", &format!("port={}", free_port())]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    w.run(&["apply", service, "--auto-approve"])
}

#[test]
fn tenants_whose_ids_join_to_the_same_text_get_their_own_objects() {
    // Client `<b>-db` + service `main` and client `<b>` + service `db-main`: with `-` joins
    // both were `spawnit-<b>-db-main-data`.
    let b = base();
    let first = world_as(format!("{b}-db"));
    let second = world_as(b.clone());
    let applied = deploy_redis(&first, "main");
    assert_eq!(applied.code, 0, "{applied}");
    let applied = deploy_redis(&second, "db-main");
    assert_eq!(applied.code, 0, "{applied}");

    let first_volumes = labelled_volumes(&first.client, "main");
    let second_volumes = labelled_volumes(&second.client, "db-main");
    assert_eq!(first_volumes, [format!("spawnit_{b}-db_main_data")]);
    assert_eq!(second_volumes, [format!("spawnit_{b}_db-main_data")], "the second tenant has a volume of its own");
    // Each container mounts its own tenant's volume, on its own tenant's network.
    let mounted = |container: &str| {
        docker(&["container", "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", container]).trim().to_owned()
    };
    assert_eq!(mounted(&format!("spawnit_{b}-db_main_redis")), first_volumes[0]);
    assert_eq!(mounted(&format!("spawnit_{b}_db-main_redis")), second_volumes[0]);
    let networks = |container: &str| {
        docker(&["container", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", container])
            .trim()
            .to_owned()
    };
    assert_eq!(networks(&format!("spawnit_{b}-db_main_redis")), format!("spawnit_{b}-db_default"));
    assert_eq!(networks(&format!("spawnit_{b}_db-main_redis")), format!("spawnit_{b}_default"));
    for (w, service) in [(&first, "main"), (&second, "db-main")] {
        let plan = w.run(&["plan", service, "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{plan}");
    }
}

/// Removes a Docker volume that no world's labels cover.
struct VolumeGuard(String);

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        docker_try(&["volume", "rm", "-f", &self.0]);
    }
}

#[test]
fn an_object_with_the_name_but_another_owner_is_refused() {
    let w = world_as(base());
    let c = w.client.clone();
    w.ok(&["create", "redis", "cache", "--set", &format!("port={}", free_port())]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);

    // Another tenant's volume already has the name this service's volume needs.
    let name = format!("spawnit_{c}_cache_data");
    let other = format!("{c}-other");
    let _guard = VolumeGuard(name.clone());
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("spawnit.client={other}"),
        "--label",
        "spawnit.service=cache",
        "--label",
        "spawnit.resource=volume.data",
        &name,
    ]);
    let applied = w.run(&["apply", "cache", "--auto-approve"]);
    assert_ne!(applied.code, 0, "{applied}");
    let text = applied.all();
    assert!(
        text.contains("refused") && text.contains(&name) && text.contains(&format!("service {other}/cache")),
        "the error names the object and its owner:\n{applied}"
    );
    // Not adopted: its labels are unchanged and no container of the service uses it.
    let owner = docker(&["volume", "inspect", "-f", "{{index .Labels \"spawnit.client\"}}", &name]);
    assert_eq!(owner.trim(), other);
    let containers = docker(&["container", "ls", "-a", "-q", "--filter", &format!("volume={name}")]);
    assert_eq!(containers.trim(), "", "no container mounts another owner's volume");
    let ours = docker(&["container", "ls", "-a", "-q", "--filter", &format!("label=spawnit.client={c}")]);
    assert_eq!(ours.trim(), "", "the apply stopped before the container");

    // A volume without SpawnIt's labels (made by hand) is refused the same way.
    docker(&["volume", "rm", &name]);
    docker(&["volume", "create", &name]);
    let applied = w.run(&["apply", "cache", "--auto-approve"]);
    assert_ne!(applied.code, 0, "{applied}");
    assert!(applied.all().contains("carries no SpawnIt labels"), "{applied}");
    let labels = docker(&["volume", "inspect", "-f", "{{len .Labels}}", &name]);
    assert_eq!(labels.trim(), "0", "the hand-made volume was left as it was");

    // Once the name is free, the service deploys with its own volume.
    docker(&["volume", "rm", &name]);
    let applied = w.run(&["apply", "cache", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied}");
    assert_eq!(labelled_volumes(&c, "cache"), [name]);
}
