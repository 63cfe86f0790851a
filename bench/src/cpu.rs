//! The CPU budget per order: CPU time (user + system) read from the kernel's accounting
//! (`/proc/<pid>/stat`, `/proc/<pid>/task/<tid>/stat`, `/proc/stat`) at both ends of a measured
//! window, split by who spent it.
//!
//! Other processes are told apart by their command line (the broker, the registry, Redis,
//! Cassandra, a Kafka Streams peer); everything else on the machine is "other". The roles the
//! bench runs in its own process are told apart by thread name: each runs on a runtime of its own
//! named `hub-<role>` (`pipeline::start`); librdkafka's own threads (`rdk:*`) serve every role's
//! clients and are counted together.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Linux reports CPU time in `USER_HZ` ticks, 100 per second on every architecture the kernel's
/// ABI fixes it for (x86-64 and arm64 included).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks spent so far, by who spent them, and by the whole machine.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    by: BTreeMap<&'static str, u64>,
    /// Busy and all ticks of the whole machine (`/proc/stat`).
    machine_busy: u64,
    machine_all: u64,
    cores: usize,
}

/// `utime + stime` of one `/proc/.../stat` line (fields 14 and 15, counted after the `comm`
/// field, which may hold spaces and parentheses).
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The bench's own threads not serving a role: load generator, partners, accounting.
const BENCH: &str = "bench (load, partners, accounting)";
/// Every process no entry of [`PROCESSES`] names.
const OTHER: &str = "other processes";
/// A Kafka Streams peer run beside the hub (`hub-bench process --peer kstreams`).
const PEER: &str = "kstreams peer";
/// What a deployment of the hub does not run: left out of the hub's CPU per order.
const NOT_THE_HUB: [&str; 3] = [BENCH, OTHER, PEER];

/// Other processes by a piece of their lower-cased command line, first match wins.
const PROCESSES: [(&str, &str); 6] = [
    ("kafka.kafka", "kafka"),
    ("cassandradaemon", "cassandra"),
    ("apicurio", "registry"),
    ("quarkus-run", "registry"),
    ("redis-server", "redis"),
    ("peer.kstreams", PEER),
];

/// This process's threads by the start of their name; the rest are [`BENCH`]'s.
const THREADS: [(&str, &str); 4] = [
    ("hub-edge", "edge"),
    ("hub-processor", "processor"),
    ("hub-sinks", "sinks"),
    ("rdk:", "kafka clients (librdkafka, all roles)"),
];

/// Who runs a process with this command line.
fn process_role(cmdline: &str) -> &'static str {
    let cmdline = cmdline.to_ascii_lowercase();
    PROCESSES.iter().find(|(piece, _)| cmdline.contains(piece)).map_or(OTHER, |(_, who)| who)
}

/// Who a thread of this process works for, by its name.
fn thread_role(name: &str) -> &'static str {
    THREADS.iter().find(|(start, _)| name.starts_with(start)).map_or(BENCH, |(_, who)| who)
}

impl Snapshot {
    /// Reads the accounting now.
    pub fn take() -> Self {
        let own = std::process::id();
        let mut snapshot =
            Snapshot { cores: std::thread::available_parallelism().map_or(1, usize::from), ..Self::default() };
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                if pid == own {
                    snapshot.own_threads(pid);
                    continue;
                }
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let who = process_role(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
                let spent = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(ticks);
                *snapshot.by.entry(who).or_default() += spent.unwrap_or(0);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(cpu) = stat.lines().next() {
                let values: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal (guest time is inside user).
                let all: u64 = values.iter().take(8).sum();
                let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
                snapshot.machine_all = all;
                snapshot.machine_busy = all.saturating_sub(idle);
            }
        }
        snapshot
    }

    fn own_threads(&mut self, pid: u32) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let spent = std::fs::read_to_string(path.join("stat")).ok().as_deref().and_then(ticks).unwrap_or(0);
            *self.by.entry(thread_role(name.trim())).or_default() += spent;
        }
    }
}

/// CPU spent between two snapshots, per order.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Milliseconds of CPU per order, by who spent them, largest first.
    pub per_order_ms: Vec<(&'static str, f64)>,
    /// Sum of the above.
    pub total_ms: f64,
    /// The machine's busy share of the window (all cores).
    pub machine_busy: f64,
    /// Orders the window is divided by.
    pub orders: f64,
    pub cores: usize,
}

impl Budget {
    /// `orders` done between `before` and `after`. Threads that ended in the window lose their
    /// ticks, so a role's figure is a floor.
    pub fn between(before: &Snapshot, after: &Snapshot, orders: f64) -> Self {
        let orders = orders.max(1.0);
        let mut per_order_ms: Vec<(&'static str, f64)> = after
            .by
            .iter()
            .map(|(who, t)| {
                #[allow(clippy::cast_precision_loss)]
                let spent = t.saturating_sub(before.by.get(who).copied().unwrap_or(0)) as f64;
                (*who, spent / TICKS_PER_SECOND * 1000.0 / orders)
            })
            .filter(|(_, ms)| *ms > 0.0)
            .collect();
        per_order_ms.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total_ms = per_order_ms.iter().map(|(_, ms)| ms).sum();
        #[allow(clippy::cast_precision_loss)]
        let machine_busy = after.machine_busy.saturating_sub(before.machine_busy) as f64
            / (after.machine_all.saturating_sub(before.machine_all) as f64).max(1.0);
        Self { per_order_ms, total_ms, machine_busy, orders, cores: after.cores }
    }

    /// Orders per second the machine's cores could carry at this CPU cost per order, leaving out
    /// what the bench itself and unrelated processes spend.
    pub fn ceiling(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let cores = self.cores as f64;
        cores * 1000.0 / self.hub_ms().max(1e-9)
    }

    /// CPU per order of everything a deployment runs: the roles, their Kafka clients and the
    /// services (the bench's own load generator and partners, and other processes, left out).
    pub fn hub_ms(&self) -> f64 {
        self.per_order_ms.iter().filter(|(who, _)| !NOT_THE_HUB.contains(who)).map(|(_, ms)| ms).sum()
    }

    pub fn print(&self) {
        println!(
            "  CPU per order over {:.0} orders (machine {:.0}% busy on {} cores):",
            self.orders,
            self.machine_busy * 100.0,
            self.cores
        );
        for (who, ms) in &self.per_order_ms {
            println!("    {who:<40} {ms:>7.3} ms  {:>5.1}%", ms / self.total_ms.max(1e-9) * 100.0);
        }
        println!(
            "    {:<40} {:>7.3} ms (hub and its services: {:.3} ms; ceiling {} cores / that = {:.0} orders/s)",
            "total",
            self.total_ms,
            self.hub_ms(),
            self.cores,
            self.ceiling()
        );
    }

    pub fn json(&self) -> Value {
        json!({
            "orders": self.orders,
            "cores": self.cores,
            "machine_busy": self.machine_busy,
            "per_order_ms": self.per_order_ms.iter().map(|(who, ms)| (who.to_string(), json!(ms))).collect::<serde_json::Map<_, _>>(),
            "total_ms": self.total_ms,
            "hub_and_services_ms": self.hub_ms(),
            "ceiling_per_s": self.ceiling(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_utime_plus_stime_after_a_comm_with_spaces() {
        let line = "42 (rdk:broker (1) x) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 100 0 0";
        assert_eq!(ticks(line), Some(12));
    }

    #[test]
    fn processes_and_threads_are_told_apart_by_name() {
        let kafka = "/usr/lib/jvm/java-17/bin/java -Xmx1G -cp /cache/kafka/libs/* kafka.Kafka server.properties";
        assert_eq!(process_role(kafka), "kafka");
        assert_eq!(process_role("java -cp x org.apache.cassandra.service.CassandraDaemon"), "cassandra");
        assert_eq!(process_role("java -jar /cache/apicurio-registry/quarkus-run.jar"), "registry");
        assert_eq!(process_role("redis-server 127.0.0.1:6379"), "redis");
        assert_eq!(process_role("java -cp target/kstreams-peer.jar peer.kstreams.Bench backlog 50000"), PEER);
        assert_eq!(process_role("cargo build --release"), OTHER);
        assert_eq!(thread_role("hub-processor"), "processor");
        assert_eq!(thread_role("rdk:broker1"), "kafka clients (librdkafka, all roles)");
        assert_eq!(thread_role("tokio-runtime-w"), BENCH);
    }

    #[test]
    fn a_budget_divides_each_share_by_the_orders() {
        let mut before = Snapshot { cores: 2, machine_all: 1000, machine_busy: 100, ..Snapshot::default() };
        before.by.insert("kafka", 100);
        before.by.insert("edge", 50);
        let mut after = before.clone();
        after.by.insert("kafka", 300);
        after.by.insert("edge", 150);
        after.machine_all = 1400;
        after.machine_busy = 400;
        let budget = Budget::between(&before, &after, 1000.0);
        assert_eq!(budget.per_order_ms, vec![("kafka", 2.0), ("edge", 1.0)]);
        assert!((budget.ceiling() - 2000.0 / 3.0).abs() < 1e-6);
        assert!((budget.machine_busy - 0.75).abs() < 1e-9);
    }
}
