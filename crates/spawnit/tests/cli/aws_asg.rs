//! `spawnit create web-app … --provider aws-asg`, then plan, apply, show and destroy through the
//! real binary against `moto_server` on loopback, as the README tells a user to; and `kill -9`
//! of `spawnit apply` at several points, after which the next apply converges with exactly one
//! of each resource.

use crate::common;

use common::{Moto, Run, World, kill_9_at};

fn env(cmd: &mut std::process::Command, moto: &Moto) {
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
}

fn aws(w: &World, moto: &Moto, args: &[&str]) -> Run {
    let mut cmd = w.cmd(args);
    env(&mut cmd, moto);
    Run::from(cmd.output().expect("run spawnit"), args)
}

/// A query-API answer of moto (`service` as in the credential scope: `ec2`,
/// `elasticloadbalancing`, `autoscaling`).
fn query(moto: &Moto, service: &str, version: &str, action: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    let path = format!("/?Action={action}&Version={version}");
    // moto routes by the credential scope of the (unchecked) signature.
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// What exists on moto: (load balancers, target groups, auto-scaling groups, launch templates,
/// SpawnIt's security groups).
fn counts(moto: &Moto) -> (usize, usize, usize, usize, usize) {
    let lbs = query(moto, "elasticloadbalancing", "2015-12-01", "DescribeLoadBalancers");
    let tgs = query(moto, "elasticloadbalancing", "2015-12-01", "DescribeTargetGroups");
    let asgs = query(moto, "autoscaling", "2011-01-01", "DescribeAutoScalingGroups");
    let lts = query(moto, "ec2", "2016-11-15", "DescribeLaunchTemplates");
    let sgs = query(moto, "ec2", "2016-11-15", "DescribeSecurityGroups");
    (
        lbs.matches("<LoadBalancerName>").count(),
        tgs.matches("<TargetGroupName>").count(),
        asgs.matches("<AutoScalingGroupARN>").count(),
        lts.matches("<launchTemplateId>").count(),
        sgs.matches("<key>spawnit.resource</key>").count(),
    )
}

const CREATE: &[&str] = &[
    "create",
    "web-app",
    "chat",
    "--provider",
    "aws-asg",
    "--aws-allow",
    "10.0.0.0/8",
    "--set",
    "http_port=8080",
    "--set",
    "replicas=2",
];

#[test]
fn a_web_app_on_an_auto_scaling_group_from_create_to_destroy() {
    let w = World::new();
    let moto = Moto::start();
    // A template without a load balancer has nothing to put in front of a group.
    let run = aws(&w, &moto, &["create", "redis", "cache", "--provider", "aws-asg", "--aws-allow", "10.0.0.0/8"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("provider: provider aws-asg runs a template with a load balancer"), "{run}");

    assert_eq!(aws(&w, &moto, CREATE).code, 0);
    let run = aws(&w, &moto, &["plan", "chat", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    for address in ["security_group.lb", "security_group.app", "alb.main", "target_group.main", "listener.main"] {
        assert!(run.stdout.contains(&format!("+ {address}")), "{address}: {run}");
    }
    assert!(run.stdout.contains("+ launch_template.main") && run.stdout.contains("+ autoscaling_group.main"), "{run}");
    let run = aws(&w, &moto, &["apply", "chat", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    let run = aws(&w, &moto, &["show", "chat"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Status:  compliant"), "{run}");
    assert!(run.stdout.contains("Provider: aws-asg (t3.micro in us-east-1, ports open to 10.0.0.0/8)"), "{run}");
    assert!(run.stdout.contains("Load balancer: ") && run.stdout.contains(":8080"), "{run}");
    assert_eq!(counts(&moto), (1, 1, 1, 1, 2));

    // A change of the replica count is an update of the group in place.
    let run = aws(&w, &moto, &["update", "chat", "--set", "replicas=3"]);
    assert_eq!(run.code, 0, "{run}");
    let run = aws(&w, &moto, &["plan", "chat"]);
    assert!(run.stdout.contains("~ autoscaling_group.main"), "{run}");
    assert!(run.stdout.contains("desired changed 2 → 3"), "{run}");
    assert_eq!(aws(&w, &moto, &["apply", "chat", "--auto-approve"]).code, 0);
    assert_eq!(aws(&w, &moto, &["plan", "chat", "--detailed-exitcode"]).code, 0);

    assert_eq!(aws(&w, &moto, &["destroy", "chat", "--auto-approve"]).code, 0);
    assert_eq!(counts(&moto), (0, 0, 0, 0, 0));
}

#[test]
fn kill_9_during_an_aws_asg_apply_never_leaves_an_orphan_or_a_duplicate() {
    let w = World::new();
    let moto = Moto::start();
    assert_eq!(aws(&w, &moto, CREATE).code, 0);
    for trigger in ["Plan:", "security_group.app: Created", "alb.main: Created", "target_group.main: Created"] {
        let mut cmd = w.cmd(&["apply", "chat", "--auto-approve"]);
        env(&mut cmd, &moto);
        // Panics unless the trigger line was printed and the apply was still running.
        kill_9_at(cmd, trigger);

        let again = aws(&w, &moto, &["apply", "chat", "--auto-approve"]);
        assert_eq!(again.code, 0, "after kill at {trigger:?}: {again}");
        let plan = aws(&w, &moto, &["plan", "chat", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "after kill at {trigger:?}: {plan}");
        assert_eq!(counts(&moto), (1, 1, 1, 1, 2), "one of each after kill at {trigger:?}");
        assert_eq!(aws(&w, &moto, &["destroy", "chat", "--auto-approve"]).code, 0);
        assert_eq!(counts(&moto), (0, 0, 0, 0, 0), "nothing left after destroy ({trigger:?})");
    }
}
