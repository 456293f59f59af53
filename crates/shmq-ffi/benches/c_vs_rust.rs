//! The cost of libshmq's C path against the Rust API: COUNT messages of 64 B and 4 KiB from
//! one producer process to one consumer process through an anonymous queue, once from C
//! (benches/c/spsc.c, linked against libshmq.so, built with -O2) and once from Rust (the same
//! loop on `shmq::Queue`), the rows interleaved (C, Rust, Rust, C, ...) over the repeats so
//! that noise hits both. Prints each row's median rate and the ratio of the C row's cost per
//! message to the Rust row's.
//!
//! `cargo bench -p shmq-ffi --bench c_vs_rust` (`-- --count N --repeat R`); under
//! `cargo test --benches` it moves a few messages once, as a smoke run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use shmq_core::{Options, Queue};

const SIZES: [usize; 2] = [64, 4096];
const CAPACITY: usize = 1024;

/// This bench's own directory (`target/PROFILE/deps`), where cargo built libshmq.so for it.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    exe.parent().expect("target/PROFILE/deps").to_path_buf()
}

fn build_c() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    assert!(
        lib.join("libshmq.so").exists(),
        "no libshmq.so in {}",
        lib.display()
    );
    let out = lib.join("shmq-ffi-bench-spsc");
    let o = Command::new("cc")
        .args(["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("benches/c/spsc.c"))
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lshmq")
        .output()
        .expect("cc runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Nanoseconds for `count` messages of `size` bytes through the C program.
fn run_c(bin: &PathBuf, size: usize, count: u64) -> f64 {
    let o = Command::new(bin)
        .args([size.to_string(), count.to_string(), CAPACITY.to_string()])
        .output()
        .expect("the C bench runs");
    assert!(
        o.status.success(),
        "C bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("nanoseconds")
}

/// Nanoseconds for `count` messages of `size` bytes through `shmq::Queue`, the same loop.
fn run_rust(size: usize, count: u64) -> f64 {
    let q = Queue::anonymous(&Options {
        capacity: CAPACITY,
        message_size: size,
        ..Default::default()
    })
    .expect("queue");
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut buf = vec![0u8; size];
    // SAFETY: this bench is single-threaded here; the child only uses the queue, the pipe and
    // `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut ok = true;
        for _ in 0..count {
            ok &= q.get_into(&mut buf) == Ok(size);
        }
        let end = now_ns();
        // SAFETY: writes 8 bytes from a live u64, then ends the child at once.
        unsafe {
            libc::write(fds[1], (&end as *const u64).cast(), 8);
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let start = now_ns();
    for i in 0..count {
        buf[..8].copy_from_slice(&i.to_ne_bytes());
        q.put(&buf[..]).expect("put");
    }
    let mut end = 0u64;
    let mut status = 0;
    // SAFETY: reads 8 bytes into a live u64; reaps our own child; closes our fds.
    unsafe {
        assert_eq!(libc::read(fds[0], (&mut end as *mut u64).cast(), 8), 8);
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "Rust consumer failed"
    );
    (end - start) as f64
}

fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn arg(args: &[String], flag: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let count = arg(&args, "--count").unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let repeat = arg(&args, "--repeat").unwrap_or(if bench { 7 } else { 1 }) as usize;
    let c = build_c();
    let started = Instant::now();
    println!("mechanism  workload  size   msgs/s (median of {repeat})  ns/msg   C/Rust cost");
    for size in SIZES {
        let (mut cs, mut rs) = (Vec::new(), Vec::new());
        for r in 0..repeat {
            // Interleaved, alternating which goes first.
            if r % 2 == 0 {
                cs.push(run_c(&c, size, count));
                rs.push(run_rust(size, count));
            } else {
                rs.push(run_rust(size, count));
                cs.push(run_c(&c, size, count));
            }
        }
        let (c_ns, r_ns) = (median(cs) / count as f64, median(rs) / count as f64);
        println!(
            "rust       spsc      {size:<5}  {:>14.0}            {r_ns:>7.1}",
            1e9 / r_ns
        );
        println!(
            "c-libshmq  spsc      {size:<5}  {:>14.0}            {c_ns:>7.1}  {:.3}",
            1e9 / c_ns,
            c_ns / r_ns
        );
    }
    println!(
        "({count} messages per run, 1 -> 1, capacity {CAPACITY}; {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
