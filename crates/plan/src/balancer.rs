//! Load balancers: the Caddy configuration SpawnIt renders for a [`LoadBalancerAttrs`], and the
//! upstream list read back from a configuration found on a running proxy.
//!
//! Caddy was chosen over Traefik and HAProxy because one small static binary gives everything a
//! replicated service needs with a ten-line, human-readable configuration: `lb_policy cookie`
//! for sticky sessions, active health checks (`health_uri`), retries of failed dials on another
//! upstream (`lb_try_duration`, which keeps requests from failing while a replica stops), and a
//! graceful in-process reload (`caddy reload`) that finishes in-flight requests on the old
//! configuration. Traefik discovers upstreams from Docker labels, which would need the Docker
//! socket inside a tenant's network; HAProxy needs a separate runtime API or a restart dance for
//! upstream changes and a longer configuration for the same behaviour.
//!
//! Every value written into the file comes from validated ids, numbers and a health path checked
//! by [`health_path_check`], so nothing a user types can add a directive.

use spawnit_model::resource::LoadBalancerAttrs;

/// The port the proxy listens on inside its container.
pub const BALANCER_LISTEN_PORT: u16 = 8080;

/// The name of the sticky-session cookie.
pub const STICKY_COOKIE: &str = "spawnit_lb";

/// Where the configuration lives inside the proxy's container.
pub const CADDYFILE_PATH: &str = "/etc/caddy/Caddyfile";

/// The Caddyfile of a load balancer.
pub fn caddyfile(lb: &LoadBalancerAttrs) -> String {
    if lb.upstreams.is_empty() {
        let mut out = caddyfile_head(lb.port.container);
        out.push_str("\trespond \"no replica is running\" 503\n}\n");
        return out;
    }
    let to: Vec<String> = lb.upstreams.iter().map(|u| format!("{u}:{}", lb.upstream_port)).collect();
    caddyfile_with(lb.port.container, &format!("to {}", to.join(" ")), lb.sticky, &lb.health_path)
}

/// How often a Swarm load balancer asks DNS for the replicas' addresses.
pub const SWARM_DNS_REFRESH: &str = "2s";

/// The Caddyfile of a load balancer in front of a Swarm service's replicas: its upstreams are
/// whatever the service's name resolves to on the overlay network (every running task, with
/// `endpoint_mode: dnsrr`), asked again every [`SWARM_DNS_REFRESH`], so Swarm's rescheduling
/// and scaling need no configuration change.
pub fn caddyfile_swarm(listen: u16, service_dns: &str, port: u16, sticky: bool, health_path: &str) -> String {
    let upstreams =
        format!("dynamic a {{\n\t\t\tname {service_dns}\n\t\t\tport {port}\n\t\t\trefresh {SWARM_DNS_REFRESH}\n\t\t}}");
    caddyfile_with(listen, &upstreams, sticky, health_path)
}

fn caddyfile_head(listen: u16) -> String {
    let mut out = String::new();
    out.push_str("# Rendered by SpawnIt: changes are overwritten on the next apply.\n");
    out.push_str("{\n\tadmin localhost:2019\n\tauto_https off\n}\n");
    out.push_str(&format!(":{listen} {{\n"));
    out
}

/// A proxy on `listen` to `upstreams` (a `to …` line or a `dynamic …` block).
fn caddyfile_with(listen: u16, upstreams: &str, sticky: bool, health_path: &str) -> String {
    let mut out = caddyfile_head(listen);
    out.push_str("\treverse_proxy {\n");
    out.push_str(&format!("\t\t{upstreams}\n"));
    if sticky {
        out.push_str(&format!("\t\tlb_policy cookie {STICKY_COOKIE}\n"));
    } else {
        out.push_str("\t\tlb_policy round_robin\n");
    }
    out.push_str("\t\tlb_try_duration 5s\n\t\tlb_try_interval 100ms\n");
    out.push_str(&format!("\t\thealth_uri {health_path}\n"));
    out.push_str("\t\thealth_interval 2s\n\t\thealth_timeout 2s\n");
    out.push_str("\t\tfail_duration 5s\n");
    out.push_str("\t}\n}\n");
    out
}

/// The upstream host names of a Caddyfile (its `to` line), in order; empty when it proxies
/// nowhere.
pub fn caddyfile_upstreams(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("to "))
        .flat_map(|l| l.split_whitespace())
        .map(|u| u.rsplit_once(':').map_or(u, |(host, _)| host).to_owned())
        .collect()
}

/// A short hash of a configuration's text, to tell a configuration edited on the proxy from the
/// one SpawnIt renders.
pub fn config_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A health path is an absolute URL path of safe characters (no spaces, quotes or braces, which
/// could end the directive it is written into).
pub fn health_path_check(path: &str) -> Result<(), String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/-._~%?&=+,;:@".contains(c);
    if !path.starts_with('/') {
        return Err(format!("{path:?} must be an absolute path starting with /"));
    }
    if path.len() > 200 || !path.chars().all(safe) {
        return Err(format!(
            "{:?} may hold only letters, digits and / - . _ ~ % ? & = + , ; : @ (at most 200)",
            path.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use spawnit_model::resource::PublishedPort;
    use spawnit_model::spec::Protocol;

    use super::*;

    fn lb(upstreams: &[&str], sticky: bool) -> LoadBalancerAttrs {
        LoadBalancerAttrs {
            name: "spawnit_c_s_load_balancer".into(),
            image: "caddy:2".into(),
            network: "spawnit_c_default".into(),
            port: PublishedPort {
                container: BALANCER_LISTEN_PORT,
                host: 8000,
                host_ip: "127.0.0.1".into(),
                protocol: Protocol::Tcp,
            },
            target: "web".into(),
            upstream_port: 5678,
            sticky,
            health_path: "/healthz".into(),
            upstreams: upstreams.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn renders_sticky_and_round_robin_and_reads_upstreams_back() {
        let sticky = caddyfile(&lb(&["a.0.x", "a.1.x"], true));
        assert!(sticky.contains("\t\tto a.0.x:5678 a.1.x:5678\n"), "{sticky}");
        assert!(sticky.contains("lb_policy cookie spawnit_lb"), "{sticky}");
        assert!(sticky.contains("health_uri /healthz"), "{sticky}");
        assert!(sticky.contains(":8080 {"), "{sticky}");
        assert_eq!(caddyfile_upstreams(&sticky), ["a.0.x", "a.1.x"]);
        let plain = caddyfile(&lb(&["a.0.x"], false));
        assert!(plain.contains("lb_policy round_robin"), "{plain}");
        let none = caddyfile(&lb(&[], true));
        assert!(none.contains("respond"), "{none}");
        assert!(caddyfile_upstreams(&none).is_empty());
    }

    #[test]
    fn swarm_upstreams_are_the_service_dns_name() {
        let text = caddyfile_swarm(8080, "spawnit_c_s_app", 80, true, "/health");
        assert!(
            text.contains("\t\tdynamic a {\n\t\t\tname spawnit_c_s_app\n\t\t\tport 80\n\t\t\trefresh 2s\n\t\t}\n"),
            "{text}"
        );
        assert!(text.contains("lb_policy cookie spawnit_lb"), "{text}");
        assert!(text.contains("health_uri /health"), "{text}");
        assert!(text.contains(":8080 {"), "{text}");
        assert!(caddyfile_swarm(8080, "x", 80, false, "/").contains("lb_policy round_robin"));
    }

    #[test]
    fn health_paths_cannot_add_directives() {
        assert_eq!(health_path_check("/healthz?full=1"), Ok(()));
        assert!(health_path_check("healthz").is_err());
        assert!(health_path_check("/x\n\trespond 200").is_err());
        assert!(health_path_check("/x }").is_err());
        assert!(health_path_check("/\"x").is_err());
    }
}
