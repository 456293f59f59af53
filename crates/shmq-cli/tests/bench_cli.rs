//! `shmq bench` end to end: the built binary, tiny counts, well-formed output. Speed is never
//! asserted.

use std::process::Command;
use std::time::Duration;

use shmq_cli::workload::{Launcher, vyukov};

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
    // spsc: 7 mechanisms (the floor and the Vyukov ring included) and the typed shmq-pod and
    // shmq-serde; mpmc: vyukov, shmq and pipe; rtt: floor, vyukov, shmq, shmq-async, pipe,
    // socket.
    assert_eq!(rows.len(), 18, "{text}");
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

/// Every workload has a vyukov row; every shmq row of it has its ratio to the Vyukov ring (the
/// p50 ratio for round trips) and one ratio per repeat behind it; the table shows both columns.
#[test]
fn every_shmq_row_has_its_ratio_to_the_vyukov_row_of_its_workload() {
    let args = [
        "bench",
        "--messages",
        "300",
        "--sizes",
        "8",
        "--processes",
        "2",
    ];
    let out = shmq()
        .args(args)
        .args(["--repeat", "3", "--json"])
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
    for work in ["spsc", "mpmc", "rtt"] {
        let v = rows
            .iter()
            .find(|r| r["mechanism"] == "vyukov" && r["workload"] == work)
            .unwrap_or_else(|| panic!("no vyukov {work} row in {text}"));
        assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["processes"], if work == "mpmc" { 2 } else { 1 }, "{v}");
        assert!(v.get("ratio_to_vyukov").is_none(), "{v}");
        let shmq_rows: Vec<_> = rows
            .iter()
            .filter(|r| {
                r["workload"] == work && r["mechanism"].as_str().unwrap().starts_with("shmq")
            })
            .collect();
        assert!(!shmq_rows.is_empty(), "{text}");
        for r in shmq_rows {
            let field = if work == "rtt" {
                "p50_ratio_to_vyukov"
            } else {
                "ratio_to_vyukov"
            };
            let median = r[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} in {r}"));
            let repeats: Vec<f64> = r["repeat_ratios_to_vyukov"]
                .as_array()
                .unwrap_or_else(|| panic!("repeat_ratios_to_vyukov in {r}"))
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(repeats.len(), 3, "{r}");
            assert!(repeats.iter().all(|&x| x > 0.0), "{r}");
            let mut sorted = repeats.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(median, sorted[1], "the median of the repeats: {r}");
        }
        for r in rows.iter().filter(|r| {
            r["workload"] == work && (r["mechanism"] == "pipe" || r["mechanism"] == "floor")
        }) {
            assert!(r.get("ratio_to_vyukov").is_none(), "{r}");
        }
    }

    let out = shmq()
        .args(args)
        .args(["--workloads", "spsc,rtt", "--repeat", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("x vyukov") && header.contains("p50/vyukov"),
        "{header}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("vyukov")),
        "{table}"
    );
    let help = shmq().args(["bench", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("  x vyukov ") && help.contains("vyukov:"),
        "{help}"
    );
}

/// The Vyukov baseline between real processes moves every message exactly once (each
/// consumer checks every message's check words and that each producer's messages reach it in
/// order; the consumers' counts and checksums add up to what the producers sent), with one and
/// several processes per side, rings of 2, 3 (not a power of two) and 1024 slots (so producers
/// find it full and consumers empty, lap after lap), and messages of one word, of a part word
/// and of 64 bytes. The long run at 4 slots is where a lost claim race would show: on two
/// CPUs a ring whose claims are a load and a store instead of a compare-and-swap passes the
/// short runs but hangs (the enqueue counter moves back) or loses messages in this one.
#[test]
fn the_vyukov_ring_moves_every_message_exactly_once_in_order_per_producer() {
    let _dog = shmq_testkit::Watchdog::new("vyukov transfers", Duration::from_secs(300));
    let launcher = Launcher::new(env!("CARGO_BIN_EXE_shmq").into(), vec!["child".into()]);
    for (producers, consumers, capacity, size, count) in [
        (1, 1, 2, 8, 20_000),
        (1, 1, 1024, 64, 200_000),
        (4, 4, 3, 20, 20_000),
        (4, 4, 4, 8, 2_000_000),
        (4, 4, 1024, 8, 200_000),
        (3, 2, 2, 64, 20_000),
    ] {
        vyukov::transfer(&launcher, size, count, producers, consumers, capacity).unwrap_or_else(
            |e| panic!("{producers}x{consumers}, {capacity} slots, {size} B: {e:#}"),
        );
    }
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
