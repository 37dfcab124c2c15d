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

/// The processes named on the command line.
#[derive(Debug, Clone)]
pub struct Procs {
    pids: Vec<(String, u32)>,
    tck: u64,
}

/// CPU ticks of every process at one moment.
#[derive(Debug, Clone)]
pub struct CpuSample(Vec<Option<u64>>);

impl Procs {
    pub fn new(pids: Vec<(String, u32)>) -> Self {
        for (name, pid) in &pids {
            if cpu_ticks(*pid).is_none() {
                eprintln!("warning: cannot read /proc/{pid}/stat ({name})");
            }
        }
        Self {
            pids,
            tck: clk_tck(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.pids.iter().any(|(n, _)| n == name)
    }

    pub fn cpu(&self) -> CpuSample {
        CpuSample(self.pids.iter().map(|(_, p)| cpu_ticks(*p)).collect())
    }

    /// Milliseconds of CPU between two samples, per name (several pids of one name add up),
    /// plus `total`.
    pub fn cpu_ms(&self, before: &CpuSample, after: &CpuSample) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        let mut total = 0.0;
        for (i, (name, _)) in self.pids.iter().enumerate() {
            let (Some(Some(b)), Some(Some(a))) = (before.0.get(i), after.0.get(i)) else {
                out.entry(name.clone()).or_insert(0.0);
                continue;
            };
            let ms = a.saturating_sub(*b) as f64 * 1000.0 / self.tck as f64;
            *out.entry(name.clone()).or_insert(0.0) += ms;
            total += ms;
        }
        out.insert("total".into(), total);
        out
    }

    /// `VmRSS` in KiB per name (several pids of one name add up).
    pub fn rss(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (name, pid) in &self.pids {
            *out.entry(name.clone()).or_insert(0) += rss_kib(*pid).unwrap_or(0);
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
}
