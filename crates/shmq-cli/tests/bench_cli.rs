//! `shmq bench` end to end: the built binary, tiny counts, well-formed output. Speed is never
//! asserted.

use std::process::Command;

fn shmq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
}

#[test]
fn bench_json_prints_one_checked_object_per_row() {
    let out = shmq()
        .args([
            "bench",
            "--json",
            "--messages",
            "300",
            "--repeat",
            "1",
            "--sizes",
            "64",
            "--processes",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // spsc: 6 mechanisms (the floor included) and the typed shmq-pod and shmq-serde; mpmc:
    // shmq and pipe; rtt: floor, shmq, shmq-async, pipe, socket.
    assert_eq!(rows.len(), 15, "{text}");
    for r in &rows {
        assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["mb_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["ratio_to_pipe"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["ratio_to_floor"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["size"], 64);
    }
    let pipe = rows
        .iter()
        .find(|r| r["mechanism"] == "pipe" && r["workload"] == "spsc")
        .unwrap();
    assert_eq!(pipe["ratio_to_pipe"].as_f64(), Some(1.0));
    let floor = rows
        .iter()
        .find(|r| r["mechanism"] == "floor" && r["workload"] == "spsc")
        .unwrap();
    assert_eq!(floor["ratio_to_floor"].as_f64(), Some(1.0));
    let rtt = rows
        .iter()
        .find(|r| r["mechanism"] == "shmq" && r["workload"] == "rtt")
        .unwrap();
    assert!(rtt["p50_us"].as_f64().unwrap() > 0.0);
    assert!(rtt["p99_us"].as_f64().unwrap() >= rtt["p50_us"].as_f64().unwrap());
}

#[test]
fn bad_options_are_one_line_errors() {
    for args in [
        &["bench", "--sizes", "4"][..],
        &["bench", "--duration", "soon"][..],
        &["bench", "--repeat", "0"][..],
    ] {
        let out = shmq().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_child_without_a_role_fails_cleanly() {
    let out = shmq().arg("child").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("SHMQ_CLI_CHILD"), "{err}");
}

/// A mechanism that cannot carry a size is a skipped row with its reason; the other rows of the
/// run still run. A Unix `SOCK_SEQPACKET` socket refuses a message larger than its send buffer
/// (`net.core.wmem_default`, 208 KiB on a stock kernel), so at 1 MiB the socket row is skipped
/// and every shmq row is measured.
#[test]
fn a_size_the_socket_cannot_carry_skips_its_row_and_the_rest_run() {
    const SIZE: usize = 1 << 20;
    let out = shmq_testkit::run_with_limit(
        shmq().args([
            "bench",
            "--json",
            "--workloads",
            "spsc",
            "--sizes",
            &SIZE.to_string(),
            "--messages",
            "1",
            "--repeat",
            "1",
        ]),
        b"",
        std::time::Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |m: &str| {
        rows.iter()
            .find(|r| r["mechanism"] == m)
            .unwrap_or_else(|| panic!("no {m} row in {text}"))
    };
    for m in ["floor", "shmq", "shmq-batch", "shmq-zero-copy", "pipe"] {
        let r = row(m);
        assert!(r.get("skipped").is_none(), "{r}");
        assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["size"], SIZE);
    }
    let socket = row("socket");
    let send_buffer: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if send_buffer < SIZE {
        let why = socket["skipped"]
            .as_str()
            .unwrap_or_else(|| panic!("{socket}"));
        assert!(
            why.contains("SO_SNDBUF") && why.contains("os error 90"),
            "{why}"
        );
        assert!(socket.get("msgs_per_sec").is_none(), "{socket}");
        assert!(socket.get("ratio_to_pipe").is_none(), "{socket}");
        assert_eq!(socket["size"], SIZE);
    } else {
        assert!(socket["msgs_per_sec"].as_f64().unwrap() > 0.0, "{socket}");
    }
}

#[test]
fn bench_table_has_human_units_only_the_columns_that_apply_and_a_progress_line() {
    let out = shmq()
        .args([
            "bench",
            "--workloads",
            "spsc",
            "--messages",
            "300",
            "--repeat",
            "1",
            "--sizes",
            "64",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    // spsc rows: rates and ratios to the pipe and the floor; no round-trip, memcpy or
    // interleaved columns.
    for shown in ["rate", "bytes/s", "x pipe", "x floor", "x bytes"] {
        assert!(header.contains(shown), "{shown:?} in {header}");
    }
    for hidden in ["p50", "p99", "x memcpy", "x alone", "msgs/s", "MB/s"] {
        assert!(!header.contains(hidden), "{hidden:?} in {header}");
    }
    let shmq_row = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("shmq"))
        .unwrap_or_else(|| panic!("no shmq row: {table}"));
    assert!(
        [" k/s", " M/s", " G/s"]
            .iter()
            .any(|u| shmq_row.contains(u)),
        "a rate in human units: {shmq_row}"
    );
    assert!(
        [" kB/s", " MB/s", " GB/s"]
            .iter()
            .any(|u| shmq_row.contains(u)),
        "bytes/s in human units: {shmq_row}"
    );
    // stderr is not a terminal here: one progress line per run.
    let rows = table.lines().count() - 1;
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("shmq bench: "))
        .collect();
    assert_eq!(progress.len(), rows, "{err}");
    assert!(
        progress[0].starts_with(&format!("shmq bench: 1/{rows} spsc ")),
        "{err}"
    );

    let help = shmq().args(["bench", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for term in ["floor", "x floor", "x alone", "x bytes", "x pipe"] {
        assert!(
            help.contains(&format!("\n  {term} "))
                || help.contains(&format!("{term}: "))
                || help.contains(&format!("  {term}  ")),
            "{term:?} in {help}"
        );
    }
}
