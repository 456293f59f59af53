//! The C API, function by function and error code by error code, from C programs built with
//! AddressSanitizer and UndefinedBehaviorSanitizer, run as real processes.

mod harness;

use std::time::Duration;

use harness::{assert_clean, compile, prefix, run_ok};

/// tests/c/api.c: every function of shmq.h and every error code a caller can provoke
/// (see its sections), with forked children for the anonymous queue, the pipe's hand-off
/// token and the lock's owner-died report.
#[test]
fn every_function_and_error_code_from_c() {
    let bin = compile("api", "api", &["tests/c/api.c"], &[]);
    let p = prefix("api");
    let out = run_ok(&bin, &[&p], Duration::from_secs(120));
    assert!(out.contains("api: ok"), "{out}");
    assert_clean(&p);
}

/// Every function that shmq.h declares is called by a C or C++ test or example, so that a new
/// function cannot go untested.
#[test]
fn every_declared_function_is_exercised() {
    let dir = harness::crate_dir();
    let header = std::fs::read_to_string(dir.join("include/shmq.h")).expect("shmq.h");
    let mut sources = String::new();
    for sub in ["tests/c", "examples/c", "examples/cpp"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("sources").flatten() {
            sources += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    let declared: Vec<&str> = header
        .lines()
        .filter(|l| !l.starts_with("//") && !l.starts_with(' '))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            (name.starts_with("shmq_") && l.contains('(')).then_some(name)
        })
        .collect();
    assert!(declared.len() > 70, "{declared:?}");
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|f| !sources.contains(&format!("{f}(")))
        .collect();
    assert!(missing.is_empty(), "never called from C: {missing:?}");
}

/// tests/c/no_space.c: SHMQ_NO_SPACE when /dev/shm (a small tmpfs in a mount namespace of the
/// program's own) has no room for a large message's side segment. Needs root; .ci/run runs it.
#[test]
#[ignore = "needs root (a mount namespace with a small /dev/shm); .ci/run runs it"]
fn no_space_when_dev_shm_is_full() {
    let bin = compile("no_space", "no_space", &["tests/c/no_space.c"], &[]);
    let p = prefix("no-space");
    let out = run_ok(&bin, &[&p], Duration::from_secs(60));
    assert!(out.contains("no_space: ok"), "{out}");
    assert_clean(&p);
}
