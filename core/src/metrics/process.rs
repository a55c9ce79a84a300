//! The process's own figures, read from /proc at each scrape under the names every Prometheus
//! client library uses (`process_*`), since prometheus-client has no process collector. Off
//! Linux, or where /proc cannot be read, a figure is left out rather than reported wrong.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second in /proc/*/stat: USER_HZ, which Linux reports as 100 on every
/// architecture it runs this on, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

#[derive(Debug)]
pub(super) struct Collector;

/// What one scrape reads.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let f = Figures::read();
        if let Some(seconds) = f.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let help = "Total user and system CPU time spent in seconds";
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                help,
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                f.resident_bytes.map(|b| b as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                f.virtual_bytes.map(|b| b as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                f.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit)",
                f.max_fds.map(|n| n as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                f.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

impl Figures {
    fn read() -> Figures {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        Figures {
            open_fds,
            ..Figures::parse(
                read("/proc/self/stat").as_deref(),
                read("/proc/self/status").as_deref(),
                read("/proc/self/limits").as_deref(),
                read("/proc/stat").as_deref(),
            )
        }
    }

    /// From the texts of /proc/self/stat, /proc/self/status, /proc/self/limits and /proc/stat.
    fn parse(
        stat: Option<&str>,
        status: Option<&str>,
        limits: Option<&str>,
        system: Option<&str>,
    ) -> Figures {
        // The command name (field 2) is in parentheses and may hold spaces: fields are counted
        // from after its closing one, where field 3 is.
        let fields: Vec<&str> = stat
            .and_then(|stat| stat.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(user), Some(system)) => Some((user + system) as f64 / USER_HZ),
            _ => None,
        };
        let boot_time = system.and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("btime "))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        let start_time_seconds = match (boot_time, field(22)) {
            (Some(boot), Some(ticks)) => Some(boot as f64 + ticks as f64 / USER_HZ),
            _ => None,
        };
        let resident_bytes = status.and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
        // `Max open files            1024                 1048576              files`
        let max_fds = limits.and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        });
        Figures {
            cpu_seconds,
            resident_bytes,
            virtual_bytes: field(23),
            open_fds: None,
            max_fds,
            start_time_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_from_proc_texts() {
        // Fields 3 to 24 of a real /proc/self/stat, with a command name holding `) (`.
        let stat = "4242 (sw) (yard) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 104857600 2048 18446744073709551615";
        let status = "Name:\tswitchyard\nVmPeak:\t  200000 kB\nVmRSS:\t    8192 kB\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            65536                1048576              files\n";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 99\n";
        let figures = Figures::parse(Some(stat), Some(status), Some(limits), Some(system));
        assert_eq!(
            figures,
            Figures {
                cpu_seconds: Some(3.0),
                resident_bytes: Some(8192 * 1024),
                virtual_bytes: Some(104_857_600),
                open_fds: None,
                max_fds: Some(65536),
                start_time_seconds: Some(1_700_001_234.56),
            }
        );
    }

    #[test]
    fn unreadable_texts_leave_figures_out() {
        assert_eq!(Figures::parse(None, None, None, None), Figures::default());
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            Figures::parse(None, None, Some(unlimited), None).max_fds,
            None
        );
    }
}
