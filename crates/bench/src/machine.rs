//! What the benchmarks ran on: CPUs, memory, kernel and Docker engine, printed next to the
//! numbers so a table can be read against its machine.

use std::fmt;

use bollard::Docker;

pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    pub docker: String,
}

impl Machine {
    pub async fn describe(docker: &Docker) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let docker = match docker.version().await {
            Ok(v) => format!("Docker {} (API {})", v.version.unwrap_or_default(), v.api_version.unwrap_or_default()),
            Err(e) => format!("Docker (version unknown: {e})"),
        };
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_mib: memory_kib / 1024,
            kernel,
            docker,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPU(s) ({}), {:.1} GiB memory, Linux {}, {}",
            self.cpus,
            self.cpu_model,
            self.memory_mib as f64 / 1024.0,
            self.kernel,
            self.docker
        )
    }
}
