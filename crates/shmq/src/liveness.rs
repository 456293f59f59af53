//! "Is this process (or thread) still the one it was?": the one liveness test of the crate.
//! A process or thread is named by its id and its start time (clock ticks since boot, field 22
//! of `/proc/ID/stat`), so a recycled id is never taken for the old owner. The robust lock
//! (thread owners), the lock-free ring's participants (the engine), the pipe's holder table
//! and the large-message side segments all ask it here. The system calls it needs (reading
//! `/proc`, `kill(id, 0)`) are in `sys`; this module holds the rules.

use std::io;

/// Fields 3 (`state`) and 22 (`starttime`) of `/proc/ID/stat`.
struct ProcStat {
    state: char,
    start: u64,
}

fn proc_stat(path: &str) -> io::Result<ProcStat> {
    let stat = crate::sys::read_proc_file(path)?;
    match (parse_state(&stat), parse_start_time(&stat)) {
        (Some(state), Some(start)) => Ok(ProcStat { state, start }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unparsable /proc/ID/stat",
        )),
    }
}

/// The start time of process (or thread) `id` in clock ticks since boot (field 22 of
/// `/proc/ID/stat`). Together with the id it names one process or thread for the life of the
/// system: a recycled id has a later start time.
///
/// # Errors
///
/// The process does not exist, or `/proc` is unreadable.
pub fn process_start_time(id: u32) -> io::Result<u64> {
    proc_stat(&format!("/proc/{id}/stat")).map(|s| s.start)
}

/// Whether the process or thread `id` that started at `start` (clock ticks since boot, as
/// [`process_start_time`] reads it, compared under `start_mask`) still runs. This is the one
/// liveness test of the crate: the pipe's holder table and the robust lock both use it.
///
/// - A zombie (`Z` or `X`: exited, not reaped yet): dead; it will never run again.
/// - Another start time: dead; the id was recycled by a newer process or thread.
/// - A start time of 0 means unknown: the id alone decides.
/// - No readable `/proc/ID` (gone, or hidden by `hidepid`): `kill(id, 0)` decides; only `ESRCH`
///   (no such id) is dead, so a hidden but live owner is waited for rather than robbed.
pub(crate) fn alive(id: u32, start: u64, start_mask: u64) -> bool {
    if id == 0 || i32::try_from(id).is_err() {
        return false;
    }
    match proc_stat(&format!("/proc/{id}/stat")) {
        Ok(s) => !matches!(s.state, 'Z' | 'X') && (start == 0 || s.start & start_mask == start),
        Err(_) => crate::sys::id_exists(id),
    }
}

/// Parses field 3 (`state`) of a `/proc/PID/stat` line.
fn parse_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Parses field 22 (`starttime`) of a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards; starttime is field 22, the 20th of these.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The start time of the calling thread `tid` (0 if `/proc` cannot tell).
pub(crate) fn thread_start_time(tid: u32) -> u64 {
    proc_stat("/proc/thread-self/stat")
        .or_else(|_| proc_stat(&format!("/proc/{tid}/stat")))
        .map_or(0, |s| s.start)
}

/// Whether the process `pid` that started at `start` (clock ticks since boot, as recorded by
/// [`process_start_time`]) still runs. A start time of 0 means unknown: the pid alone decides.
/// A zombie (exited, not yet reaped by its parent) does not run.
///
/// # Examples
///
/// ```
/// use shmq::substrate::liveness::{process_alive, process_start_time};
/// let me = std::process::id();
/// assert!(process_alive(me, process_start_time(me).unwrap()));
/// assert!(!process_alive(me, 1)); // another start time: a recycled pid
/// ```
pub fn process_alive(pid: u32, start: u64) -> bool {
    alive(pid, start, u64::MAX)
}

/// Whether the thread named by a robust lock's owner word (thread id in the low 32 bits, the
/// low 32 bits of its start time in the high ones) still runs.
pub(crate) fn owner_word_alive(word: u64) -> bool {
    alive(word as u32, word >> 32, 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parses_names_with_spaces_and_parens() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_state(line), Some('S'));
        assert_eq!(parse_state("1 (x) Z 0"), Some('Z'));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn own_process_and_thread_are_alive_with_their_start_times() {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(start > 0);
        assert!(alive(me, start, u64::MAX));
        assert!(alive(me, 0, u64::MAX));
        assert!(!alive(me, start + 1, u64::MAX));
        assert!(!alive(0, 0, u64::MAX));
        let (tid, tstart) = std::thread::spawn(crate::sys::thread_identity)
            .join()
            .unwrap();
        // The thread has ended: its id names nothing now (or a newer thread). `join` returns
        // when the thread clears its id word, a moment before the kernel has released the
        // task, so its `/proc` entry may still answer for a little while.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while alive(tid, tstart, u64::MAX) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!alive(tid, tstart, u64::MAX));
        let (tid, tstart) = crate::sys::thread_identity();
        assert!(tstart > 0);
        assert!(alive(tid, tstart & 0xffff_ffff, 0xffff_ffff));
    }
}
