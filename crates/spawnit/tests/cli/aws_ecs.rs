//! `spawnit create web-app … --provider aws-ecs`, then plan, apply, show and destroy through the
//! real binary against real AWS APIs (`moto_server` on loopback), and `kill -9` of `spawnit
//! apply` at several points: the next apply converges with exactly one of each resource.

use crate::common;

use common::{Moto, Run, World, kill_9_at};

fn aws(w: &World, moto: &Moto, args: &[&str]) -> Run {
    let mut cmd = w.cmd(args);
    env(&mut cmd, moto);
    Run::from(cmd.output().expect("run spawnit"), args)
}

fn env(cmd: &mut std::process::Command, moto: &Moto) {
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
}

/// One call of a JSON AWS API on moto (which routes by the unchecked signature's scope).
fn call(moto: &Moto, service: &str, target: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nX-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// (active clusters, active task definitions, active services, parameters) of `client`'s
/// service `web`.
fn tagged(moto: &Moto, client: &str) -> (usize, usize, usize, usize) {
    let ecs = |op: &str, body: &str| call(moto, "ecs", &format!("AmazonEC2ContainerServiceV20141113.{op}"), body);
    let name = format!("spawnit_{client}_web");
    let clusters = ecs("DescribeClusters", &format!(r#"{{"clusters":["{name}"]}}"#)).matches(r#""ACTIVE""#).count();
    let defs = ecs("ListTaskDefinitions", &format!(r#"{{"familyPrefix":"{name}","status":"ACTIVE"}}"#))
        .matches(&format!(":task-definition/{name}:"))
        .count();
    let services = if clusters > 0 {
        ecs("ListServices", &format!(r#"{{"cluster":"{name}"}}"#)).matches(":service/").count()
    } else {
        0
    };
    let parameters = call(
        moto,
        "ssm",
        "AmazonSSM.DescribeParameters",
        &format!(
            r#"{{"ParameterFilters":[{{"Key":"Path","Option":"Recursive","Values":["/spawnit/{client}/web"]}}]}}"#
        ),
    )
    .matches(r#""Name""#)
    .count();
    (clusters, defs, services, parameters)
}

#[test]
fn a_web_app_on_ecs_fargate_from_create_to_destroy_and_kill_9_during_apply() {
    let w = World::new();
    let moto = Moto::start();

    let run = aws(
        &w,
        &moto,
        &[
            "create",
            "web-app",
            "web",
            "--provider",
            "aws-ecs",
            "--aws-allow",
            "10.0.0.0/8",
            "--aws-task-memory",
            "4096",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("aws.task_memory_mb: 4096 MiB does not go with 256 CPU units"), "{run}");

    let create =
        ["create", "web-app", "web", "--provider", "aws-ecs", "--aws-allow", "10.0.0.0/8", "--set", "replicas=2"];
    let run = aws(&w, &moto, &create);
    assert_eq!(run.code, 0, "{run}");
    let run = aws(&w, &moto, &["plan", "web", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    for line in ["+ ecs_cluster.main", "+ iam_role.execution", "+ task_definition.main", "+ ecs_service.main"] {
        assert!(run.stdout.contains(line), "{line}: {run}");
    }

    for trigger in [
        "Plan:",
        "iam_role.execution: Created",
        "task_definition.main: Creating",
        "task_definition.main: Created",
        "ecs_service.main: Creating",
    ] {
        let mut cmd = w.cmd(&["apply", "web", "--auto-approve"]);
        env(&mut cmd, &moto);
        // Panics unless the trigger line was printed and the apply was still running.
        kill_9_at(cmd, trigger);

        let again = aws(&w, &moto, &["apply", "web", "--auto-approve"]);
        assert_eq!(again.code, 0, "after kill at {trigger:?}: {again}");
        let plan = aws(&w, &moto, &["plan", "web", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "after kill at {trigger:?}: {plan}");
        assert_eq!(
            tagged(&moto, &w.client),
            (1, 1, 1, 0),
            "one cluster, task definition, service after kill at {trigger:?}"
        );

        let run = aws(&w, &moto, &["show", "web"]);
        assert_eq!(run.code, 0, "{run}");
        assert!(run.stdout.contains("Status:  compliant"), "{run}");
        assert!(
            run.stdout.contains(
                "Provider: aws-ecs (Fargate tasks of 256 CPU units / 512 MiB in us-east-1, ports open to 10.0.0.0/8)"
            ),
            "{run}"
        );
        // moto starts no task: none of the two runs.
        assert!(run.stdout.contains("Tasks:   ecs_service.main: 0/2 running"), "{run}");

        assert_eq!(aws(&w, &moto, &["destroy", "web", "--auto-approve"]).code, 0);
        assert_eq!(tagged(&moto, &w.client), (0, 0, 0, 0), "nothing left after destroy ({trigger:?})");
    }
}
