//! `spawnit create … --provider aws`, then plan, apply, show and destroy, through the real
//! binary against a real EC2 API (`moto_server` on loopback), as the README tells a user to.

mod common;

use common::{Moto, Run, World};

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
