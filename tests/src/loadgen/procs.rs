//! What the kernel says about processes: CPU time and resident memory from `/proc`, and this
//! process's open-file limit.

use std::collections::BTreeMap;

/// Raises `RLIMIT_NOFILE`: soft to the hard limit, and both to `fs.nr_open` (at most 1,048,576)
/// where allowed (as root). Returns the limits in force afterwards.
pub fn raise_nofile() -> (u64, u64) {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((0, 0));
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1_048_576)
        .min(1_048_576);
    if hard < nr_open && Resource::NOFILE.set(nr_open, nr_open).is_ok() {
        return (nr_open, nr_open);
    }
    if soft < hard && Resource::NOFILE.set(hard, hard).is_ok() {
        return (hard, hard);
    }
    Resource::NOFILE.get().unwrap_or((soft, hard))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be run).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 overall, utime 14 and stime 15, so index 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The processes whose CPU and memory are measured: those named on the command line by pid, and
/// every process whose command name is one of `commands` (looked up at each sample: a server
/// such as PostgreSQL starts a process per connection, some of them during the run).
#[derive(Debug, Clone)]
pub struct Procs {
    pids: Vec<(String, u32)>,
    commands: Vec<String>,
    tck: u64,
}

/// CPU ticks of every process at one moment, by (name, pid).
#[derive(Debug, Clone)]
pub struct CpuSample(BTreeMap<(String, u32), u64>);

/// The processes whose command name (`/proc/<pid>/comm`) is `command`.
fn pids_of(command: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == command)
        })
        .collect()
}

impl Procs {
    pub fn new(pids: Vec<(String, u32)>, commands: Vec<String>) -> Self {
        for (name, pid) in &pids {
            if cpu_ticks(*pid).is_none() {
                eprintln!("warning: cannot read /proc/{pid}/stat ({name})");
            }
        }
        for command in &commands {
            if pids_of(command).is_empty() {
                eprintln!("warning: no process named {command} is running");
            }
        }
        Self {
            pids,
            commands,
            tck: clk_tck(),
        }
    }

    /// Every measured process now, by name.
    fn all(&self) -> Vec<(String, u32)> {
        let mut all = self.pids.clone();
        for command in &self.commands {
            all.extend(pids_of(command).into_iter().map(|p| (command.clone(), p)));
        }
        all
    }

    pub fn has(&self, name: &str) -> bool {
        self.pids.iter().any(|(n, _)| n == name)
    }

    pub fn cpu(&self) -> CpuSample {
        CpuSample(
            self.all()
                .into_iter()
                .filter_map(|(name, p)| Some(((name, p), cpu_ticks(p)?)))
                .collect(),
        )
    }

    /// Milliseconds of CPU between two samples, per name (several pids of one name add up),
    /// plus `total`. A process that appeared in between counts from its start; one that exited
    /// in between is not counted.
    pub fn cpu_ms(&self, before: &CpuSample, after: &CpuSample) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (name, _) in self.pids.iter() {
            out.entry(name.clone()).or_insert(0.0);
        }
        for command in &self.commands {
            out.entry(command.clone()).or_insert(0.0);
        }
        let mut total = 0.0;
        for (key, a) in &after.0 {
            let b = before.0.get(key).copied().unwrap_or(0);
            let ms = a.saturating_sub(b) as f64 * 1000.0 / self.tck as f64;
            *out.entry(key.0.clone()).or_insert(0.0) += ms;
            total += ms;
        }
        out.insert("total".into(), total);
        out
    }

    /// `VmRSS` in KiB per name (several pids of one name add up).
    pub fn rss(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (name, pid) in self.all() {
            *out.entry(name).or_insert(0) += rss_kib(pid).unwrap_or(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
    }

    #[test]
    fn finds_processes_by_command_name() {
        let comm = std::fs::read_to_string("/proc/self/comm").expect("own comm");
        assert!(pids_of(comm.trim_end()).contains(&std::process::id()));
        let procs = Procs::new(Vec::new(), vec![comm.trim_end().to_owned()]);
        let before = procs.cpu();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {}
        let after = procs.cpu();
        assert!(procs.cpu_ms(&before, &after)["total"] >= 0.0);
        assert!(procs.rss()[comm.trim_end()] > 0);
    }
}
