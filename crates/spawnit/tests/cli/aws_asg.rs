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

/// `%XX` decoded (IAM answers policy documents URL-encoded).
fn url_decoded(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()).filter(|_| bytes[i] == b'%') {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text between the first `<tag>` and `</tag>` of an answer.
fn element<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

/// SpawnIt's roles and instance profiles on moto (IAM path `/spawnit/`).
fn iam_counts(moto: &Moto) -> (usize, usize) {
    let roles = query(moto, "iam", "2010-05-08", "ListRoles&PathPrefix=/spawnit/");
    let profiles = query(moto, "iam", "2010-05-08", "ListInstanceProfiles&PathPrefix=/spawnit/");
    (roles.matches("<RoleName>").count(), profiles.matches("<InstanceProfileName>").count())
}

#[test]
fn the_spawnit_template_on_s3_runs_its_instances_with_a_role_for_the_bucket_and_no_key() {
    let w = World::new();
    let moto = Moto::start();
    let create = [
        "create",
        "spawnit",
        "platform",
        "--provider",
        "aws-asg",
        "--aws-allow",
        "10.0.0.0/8",
        "--set",
        "s3=true",
        "--set",
        "s3_location=s3://platform-store/spawnit",
        "--set",
        "replicas=2",
    ];
    let run = aws(&w, &moto, &create);
    assert_eq!(run.code, 0, "{run}");
    let run = aws(&w, &moto, &["plan", "platform", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    for address in ["+ iam_role.instance", "+ instance_profile.main", "+ launch_template.main"] {
        assert!(run.stdout.contains(address), "{address}: {run}");
    }
    let run = aws(&w, &moto, &["apply", "platform", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("iam_role.instance: Created") && run.stdout.contains("instance_profile.main: Created"));
    assert_eq!(iam_counts(&moto), (1, 1));

    // The role: trusted by EC2, tagged as the service's, its one inline policy on that bucket only.
    let profiles = query(&moto, "iam", "2010-05-08", "ListInstanceProfiles&PathPrefix=/spawnit/");
    let profile = element(&profiles, "InstanceProfileName").expect("a profile").to_owned();
    let profile_arn = element(&profiles, "Arn").expect("its ARN").to_owned();
    assert!(profile_arn.contains(":instance-profile/"), "{profiles}");
    let got = query(&moto, "iam", "2010-05-08", &format!("GetInstanceProfile&InstanceProfileName={profile}"));
    let role = element(&got, "RoleName").expect("the profile holds a role").to_owned();
    assert_eq!(got.matches("<RoleName>").count(), 1, "{got}");
    assert!(got.contains("spawnit.resource") && got.contains("instance_profile.main"), "{got}");
    let got = query(&moto, "iam", "2010-05-08", &format!("GetRole&RoleName={role}"));
    let trust = url_decoded(element(&got, "AssumeRolePolicyDocument").expect("a trust policy"));
    assert!(trust.contains("ec2.amazonaws.com") && trust.contains("sts:AssumeRole"), "{trust}");
    assert!(got.contains("iam_role.instance"), "{got}");
    let policies = query(&moto, "iam", "2010-05-08", &format!("ListRolePolicies&RoleName={role}"));
    assert_eq!(policies.matches("<member>").count(), 1, "{policies}");
    let got = query(&moto, "iam", "2010-05-08", &format!("GetRolePolicy&RoleName={role}&PolicyName=spawnit"));
    let policy: serde_json::Value =
        serde_json::from_str(&url_decoded(element(&got, "PolicyDocument").expect("a policy"))).expect("JSON");
    let resources: Vec<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    assert_eq!(resources, ["arn:aws:s3:::platform-store/spawnit/*", "arn:aws:s3:::platform-store"], "{policy}");
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(|a| if a.starts_with("s3:") { "s3" } else { "other" }))
        .collect();
    assert_eq!(actions, ["s3"; 4], "{policy}");
    let text = policy.to_string();
    for a in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"] {
        assert!(text.contains(&format!("\"{a}\"")), "{a}: {policy}");
    }

    // The launch template gives the instances the profile.
    let lts = query(&moto, "ec2", "2016-11-15", "DescribeLaunchTemplates");
    let lt = element(&lts, "launchTemplateId").expect("a launch template").to_owned();
    let versions = query(&moto, "ec2", "2016-11-15", &format!("DescribeLaunchTemplateVersions&LaunchTemplateId={lt}"));
    let data = element(&versions, "iamInstanceProfile").expect("an instance profile in the data");
    assert!(data.contains(&profile_arn), "{versions}");
    assert_eq!(aws(&w, &moto, &["plan", "platform", "--detailed-exitcode"]).code, 0);

    // The profile deleted outside SpawnIt: made again, and a new template version names it.
    query(
        &moto,
        "iam",
        "2010-05-08",
        &format!("RemoveRoleFromInstanceProfile&InstanceProfileName={profile}&RoleName={role}"),
    );
    query(&moto, "iam", "2010-05-08", &format!("DeleteInstanceProfile&InstanceProfileName={profile}"));
    let run = aws(&w, &moto, &["plan", "platform", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("+ instance_profile.main"), "{run}");
    assert!(run.stdout.contains("removed outside SpawnIt"), "{run}");
    assert!(run.stdout.contains("~ launch_template.main"), "{run}");
    let run = aws(&w, &moto, &["apply", "platform", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    // Its role taken out of it outside SpawnIt: put back.
    query(
        &moto,
        "iam",
        "2010-05-08",
        &format!("RemoveRoleFromInstanceProfile&InstanceProfileName={profile}&RoleName={role}"),
    );
    let run = aws(&w, &moto, &["plan", "platform", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("role changed outside SpawnIt: no role instead of"), "{run}");
    assert_eq!(aws(&w, &moto, &["apply", "platform", "--auto-approve"]).code, 0);
    let got = query(&moto, "iam", "2010-05-08", &format!("GetInstanceProfile&InstanceProfileName={profile}"));
    assert_eq!(element(&got, "RoleName"), Some(role.as_str()), "{got}");
    assert_eq!(aws(&w, &moto, &["plan", "platform", "--detailed-exitcode"]).code, 0);

    let run = aws(&w, &moto, &["destroy", "platform", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(iam_counts(&moto), (0, 0));
    assert_eq!(counts(&moto), (0, 0, 0, 0, 0));
}
