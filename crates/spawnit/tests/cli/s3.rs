//! The same CLI on the S3 back end: a real S3 API (`moto_server`) on loopback holds the catalog,
//! specs, state and locks; the service runs on the real Docker engine.

use crate::common;

use std::time::Duration;

use common::*;

#[test]
fn a_service_lives_in_an_s3_store_from_create_to_destroy() {
    let w = World::new();
    let moto = Moto::start();
    moto.bucket_create("spawnit-test");
    let run = |args: &[&str]| {
        let mut cmd = w.cmd(args);
        moto.configure(&mut cmd, "spawnit-test");
        Run::from(cmd.output().unwrap(), args)
    };
    let ok = |args: &[&str]| {
        let r = run(args);
        assert_eq!(r.code, 0, "{r}");
        r
    };
    let port = free_port();
    assert!(ok(&["catalog"]).stdout.contains("postgres"));
    ok(&["create", "hello", "web", "--set", &format!("port={port}"), "--set", "message=from s3"]);
    ok(&["network", "apply", "default", "--auto-approve"]);

    // Two writers at once: the first holds the lock (stopped mid-operation) while the second
    // runs, so they certainly overlap; the second says why it did not write.
    let make = || {
        let mut cmd = w.cmd(&["apply", "web", "--auto-approve"]);
        moto.configure(&mut cmd, "spawnit-test");
        cmd
    };
    let (first, second) = two_overlapping_applies(make, &["apply"]);
    assert_eq!(second.code, 1, "{second}");
    assert!(second.stderr.contains("is locked by job"), "{second}");
    assert_eq!(first.code, 0, "{first}");
    assert!(http_get(port, Duration::from_secs(15)).unwrap().contains("from s3"));
    assert_eq!(run(&["plan", "web", "--detailed-exitcode"]).code, 0);
    assert_eq!(w.labelled(Some("web")).len(), 1);

    // Nothing went to the local directory.
    assert!(!w.data_dir().exists());
    ok(&["destroy", "web", "--auto-approve"]);
    assert!(w.labelled(Some("web")).is_empty());
    ok(&["delete", "web"]);
    ok(&["network", "destroy", "default", "--auto-approve"]);
}
