//! `spawnit create … --provider aws`, then plan, apply, show and destroy, through the real
//! binary against a real EC2 API (`moto_server` on loopback), as the README tells a user to.

use crate::common;

use common::{Moto, Run, World, kill_9_at};

fn aws(w: &World, moto: &Moto, args: &[&str]) -> Run {
    let mut cmd = w.cmd(args);
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    Run::from(cmd.output().expect("run spawnit"), args)
}

#[test]
fn a_redis_service_on_aws_from_create_to_destroy() {
    let w = World::new();
    let moto = Moto::start();

    let run = aws(&w, &moto, &["create", "redis", "cache", "--provider", "aws"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("aws.allowed_cidrs: required"), "{run}");
    let run = aws(
        &w,
        &moto,
        &[
            "create",
            "redis",
            "cache",
            "--provider",
            "aws",
            "--aws-instance-type",
            "t9.huge",
            "--aws-allow",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("aws.instance_type: instance type t9.huge is not offered in region us-east-1"),
        "{run}"
    );
    let run = aws(&w, &moto, &["create", "redis", "cache", "--aws-allow", "10.0.0.0/8"]);
    assert!(run.code == 1 && run.stderr.contains("need --provider aws"), "{run}");

    let create = [
        "create",
        "redis",
        "cache",
        "--provider",
        "aws",
        "--aws-allow",
        "10.0.0.0/8",
        "--set",
        "password=hunter2hunter2",
    ];
    let run = aws(&w, &moto, &create);
    assert_eq!(run.code, 0, "{run}");

    let run = aws(&w, &moto, &["plan", "cache", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("+ security_group.main") && run.stdout.contains("+ instance.main"), "{run}");

    let run = aws(&w, &moto, &["apply", "cache", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Endpoints:") && run.stdout.contains("redis://"), "{run}");

    let run = aws(&w, &moto, &["show", "cache"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Status:  compliant"), "{run}");
    assert!(run.stdout.contains("Provider: aws (t3.micro in us-east-1, ports open to 10.0.0.0/8)"), "{run}");
    assert!(run.stdout.contains("Instance: public IP "), "{run}");
    assert!(!run.all().contains("hunter2hunter2"), "{run}");

    let run = aws(&w, &moto, &["destroy", "cache", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    let run = aws(&w, &moto, &["plan", "cache", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "destroyed: apply would create it again\n{run}");
}

/// Tagged EC2 objects of a service, as the EC2 query API on moto lists them:
/// (instances not terminated, security groups).
fn tagged(moto: &Moto, service: &str) -> (usize, usize) {
    let query = |action: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
        let path = format!(
            "/?Action={action}&Version=2016-11-15&Filter.1.Name=tag:spawnit.service&Filter.1.Value.1={service}"
        );
        // moto routes by the credential scope of the (unchecked) signature.
        let auth =
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let instances = query("DescribeInstances");
    let alive = instances
        .split("<instanceState>")
        .skip(1)
        .filter(|s| !s.contains("<name>terminated</name>") && !s.contains("<name>shutting-down</name>"))
        .count();
    let groups = query("DescribeSecurityGroups").matches("<groupId>").count();
    (alive, groups)
}

#[test]
fn kill_9_during_an_aws_apply_never_leaves_an_orphan_or_a_duplicate() {
    let w = World::new();
    let moto = Moto::start();
    let create = ["create", "hello", "web", "--provider", "aws", "--aws-allow", "10.0.0.0/8"];
    assert_eq!(aws(&w, &moto, &create).code, 0);
    for trigger in ["Plan:", "security_group.main: Creating", "security_group.main: Created", "instance.main: Creating"]
    {
        let mut cmd = w.cmd(&["apply", "web", "--auto-approve"]);
        cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        // Panics unless the trigger line was printed and the apply was still running.
        kill_9_at(cmd, trigger);

        let again = aws(&w, &moto, &["apply", "web", "--auto-approve"]);
        assert_eq!(again.code, 0, "after kill at {trigger:?}: {again}");
        assert_eq!(aws(&w, &moto, &["plan", "web", "--detailed-exitcode"]).code, 0, "after kill at {trigger:?}");
        assert_eq!(tagged(&moto, "web"), (1, 1), "one instance, one group after kill at {trigger:?}");
        assert_eq!(aws(&w, &moto, &["destroy", "web", "--auto-approve"]).code, 0);
        assert_eq!(tagged(&moto, "web"), (0, 0), "nothing left after destroy ({trigger:?})");
    }
}
