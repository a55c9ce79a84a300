//! Unit tests of the metrics registry: counters with their labels, refusals by reason, build
//! info and the process figures.

use super::*;

#[test]
fn renders_counters_with_their_labels() {
    let m = Metrics::new();
    m.hook("acme", "watsi", "accepted");
    m.hook("acme", "watsi", "accepted");
    m.sink_attempt("acme", "crm", "dead");
    let text = m.render(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"));
    let classic = m.render(Format::Prometheus);
    assert!(!classic.contains("# EOF"));
    assert!(
        classic.contains("# TYPE switchyard_hook_requests_total counter"),
        "{classic}"
    );
    m.plugin_fault("whatsable", "timeout");
    let text = m.render(Format::OpenMetrics);
    assert!(text.contains(
        r#"switchyard_hook_requests_total{workspace="acme",vendor="watsi",outcome="accepted"} 2"#
    ), "{text}");
    assert!(
        text.contains(
            r#"switchyard_sink_attempts_total{workspace="acme",sink="crm",outcome="dead"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_plugin_faults_total{vendor="whatsable",kind="timeout"} 1"#),
        "{text}"
    );
}

#[test]
fn refusals_are_counted_by_reason_and_taken_events_are_not() {
    let m = Metrics::new();
    m.hook("acme", "watsi", "accepted");
    m.hook("acme", "watsi", "duplicate");
    m.hook("acme", "watsi", "rate_limited");
    m.hook("acme", "watsi", "rate_limited");
    m.hook(UNKNOWN, UNKNOWN, "unknown_workspace");
    let text = m.render(Format::Prometheus);
    let refusals: Vec<&str> = (text.lines())
        .filter(|l| l.starts_with("switchyard_hook_refusals_total{"))
        .collect();
    assert_eq!(refusals.len(), 2, "{text}");
    assert!(text
        .contains(r#"switchyard_hook_refusals_total{workspace="acme",reason="rate_limited"} 2"#));
    assert!(text.contains(
        r#"switchyard_hook_refusals_total{workspace="(unknown)",reason="unknown_workspace"} 1"#
    ));
}

#[test]
fn build_info_and_process_figures_are_exposed() {
    let text = Metrics::new().render(Format::Prometheus);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "switchyard_build_info{{version=\"{version}\"}} 1\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    for gauge in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value = (text.lines())
            .find_map(|l| l.strip_prefix(&format!("{gauge} ")))
            .unwrap_or_else(|| panic!("no {gauge} in {text}"));
        assert!(value.parse::<f64>().unwrap() > 0.0, "{gauge} {value}");
    }
    let open = Metrics::new().render(Format::OpenMetrics);
    assert!(open.ends_with("# EOF\n"));
    assert_eq!(open.matches("# EOF").count(), 1);
}
