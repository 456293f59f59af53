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
