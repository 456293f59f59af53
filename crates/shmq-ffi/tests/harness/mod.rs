//! Compiles libshmq's C and C++ programs with the sanitizers, runs them as real processes
//! with a watchdog, and checks that they leave nothing in /dev/shm.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the libshmq.so and libshmq.a of this build: this test's own directory
/// (`target/PROFILE/deps`), where it builds the library for the tests (the crate's `rlib`
/// type makes it a dependency of every test, so that the library is always current).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe.parent().expect("target/PROFILE/deps");
    assert!(
        dir.join("libshmq.so").exists() && dir.join("libshmq.a").exists(),
        "no libshmq.so and libshmq.a in {}",
        dir.display()
    );
    dir.to_path_buf()
}

/// A fresh directory for this test's binaries.
pub fn out_dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("shmq-ffi")
        .join(test);
    std::fs::create_dir_all(&d).expect("test output directory");
    d
}

/// The sanitizer flags of every C and C++ build.
pub const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
    "-O1",
];

/// Compiles `sources` (paths relative to the crate) into `out/name` against libshmq (C unless
/// a source ends in `.cpp`); panics with the compiler's output if it fails.
pub fn compile(test: &str, name: &str, sources: &[&str], extra: &[&str]) -> PathBuf {
    let cpp = sources.iter().any(|s| s.ends_with(".cpp"));
    let out = out_dir(test).join(name);
    let lib = lib_dir();
    let dir = crate_dir();
    let mut cmd = Command::new(if cpp { "g++" } else { "cc" });
    cmd.args(if cpp {
        &["-std=c++20"][..]
    } else {
        &["-std=c11", "-D_GNU_SOURCE"][..]
    })
    .args(["-Wall", "-Wextra", "-Werror"])
    .args(SANITIZE)
    .arg("-I")
    .arg(dir.join("include"))
    .arg("-I")
    .arg(dir.join("tests/c"))
    .args(sources.iter().map(|s| dir.join(s)))
    .arg("-o")
    .arg(&out)
    .arg("-L")
    .arg(&lib)
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .args(["-lshmq", "-lpthread"])
    .args(extra);
    let o = cmd.output().expect("the C compiler runs");
    assert!(
        o.status.success(),
        "compiling {sources:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A unique prefix of segment names for `test`.
pub fn prefix(test: &str) -> String {
    format!("shmq-test-ffi-{}-{test}", std::process::id())
}

/// Panics if /dev/shm holds anything named with `prefix`, after removing it.
pub fn assert_clean(prefix: &str) {
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    for n in &left {
        let p = Path::new("/dev/shm").join(n);
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
    }
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// The sanitizers' settings for a run: fail on the first report.
pub fn sanitized(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "ASAN_OPTIONS",
        "abort_on_error=0:halt_on_error=1:detect_leaks=1",
    )
    .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
}

/// Waits for `child` at most `limit`, reading its piped output meanwhile; if it still runs
/// then, kills its whole process group (it and the children it forked: start it with
/// [`own_group`]) and panics (a deadlock fails the test instead of hanging it).
pub fn wait_with_watchdog(mut child: Child, limit: Duration, what: &str) -> Output {
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("waitpid") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                // SAFETY: kill(2) of the group the child leads (see `own_group`), and of it.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                    libc::kill(child.id() as i32, libc::SIGKILL);
                }
                let _ = child.wait();
                let (o, e) = (
                    out.join().unwrap_or_default(),
                    err.join().unwrap_or_default(),
                );
                panic!(
                    "{what} still ran after {limit:?} (watchdog):\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&o),
                    String::from_utf8_lossy(&e)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // A forked grandchild left running would hold the pipes open: the group is killed once
    // the child has exited, so that reading them ends.
    // SAFETY: kill(2) of the group the child led.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Makes the command's process the leader of a new process group, so that the watchdog can
/// kill it with every process it forked.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

/// Runs `bin args` under the sanitizers with a watchdog and asserts it succeeded; returns its
/// standard output.
pub fn run_ok(bin: &Path, args: &[&str], limit: Duration) -> String {
    let child = own_group(sanitized(&mut Command::new(bin)))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test program starts");
    let o = wait_with_watchdog(child, limit, &bin.display().to_string());
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "{} {args:?} failed ({}):\nstdout: {out}\nstderr: {err}",
        bin.display(),
        o.status
    );
    out
}
