//! `spawnit scale SERVICE N` (the verb): sets the desired replica count of a replicated
//! container in the spec (the plan shows the new replica, apply makes it, as after `update`); a
//! count outside the scale policy, or a container that is not replicated, is refused naming the
//! field, and nothing is stored. Real binary, real store, real Docker engine (the plan observes
//! it). The scaling itself through the load balancer is in `scale.rs`.

use crate::common;

use common::World;

#[test]
fn scale_sets_the_count_in_the_spec_and_refuses_counts_outside_the_policy() {
    let w = World::new();
    let help = w.ok(&["scale", "--help"]).stdout;
    assert!(help.contains("Set how many replicas") && help.contains("--container") && help.contains("<N>"), "{help}");

    w.ok(&[
        "create",
        "web-app",
        "shop",
        "--set",
        "image=spawnit-test/webapp:1",
        "--set",
        "replicas=2",
        "--set",
        "max_replicas=3",
        "--set",
        &format!("http_port={}", common::free_port()),
    ]);
    let show = |w: &World| w.ok(&["show", "shop", "--output", "json"]).stdout;
    let before = show(&w);

    // Above the policy's maximum, or a container that is not replicated: refused, nothing stored.
    let refused = w.run(&["scale", "shop", "4"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("replicas") && refused.stderr.contains("maximum 3"), "{refused}");
    let refused = w.run(&["scale", "shop", "2", "--container", "nope"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("container") && refused.stderr.contains("nope"), "{refused}");
    let refused = w.run(&["scale", "shop", "-1"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert_eq!(show(&w), before, "nothing stored");

    w.ok(&["network", "apply", "default", "--auto-approve"]);
    let out = w.ok(&["scale", "shop", "3"]).stdout;
    assert!(out.contains("Scaled app of service") && out.contains("2 → 3"), "{out}");
    let plan = w.run(&["plan", "shop", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("container.app[2]"), "{plan}");
    let w2 = w.ok(&["scale", "shop", "1", "--container", "app"]).stdout;
    assert!(w2.contains("3 → 1"), "{w2}");
}
