//! One module per subcommand family.

use std::time::Duration;

/// `println!` that ignores a closed stdout (`shmq ls | head`): the reader went away, which is
/// not worth a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub(crate) mod admin;
pub(crate) mod bench;
#[cfg(feature = "bridge")]
pub(crate) mod bridge;
pub(crate) mod demo;
pub(crate) mod dict;
pub(crate) mod interrupt;
pub(crate) mod io;
pub(crate) mod metrics;
pub(crate) mod top;

/// Why `shmq bridge` and the demo's bridge scenario are missing from a build without the
/// `bridge` feature, and how to get them.
#[cfg(not(feature = "bridge"))]
pub(crate) const BRIDGE_NOT_BUILT: &str = "this shmq was built without the NATS bridge: \
     build it with `--features bridge` (`cargo install --locked --path crates/shmq-cli \
     --features bridge`, or `cargo run --release -p shmq-cli --features bridge -- ...`)";

/// The exit status of a command that ended early without an error: `get --count N` that got
/// fewer than N before its timeout (or before the queue was closed and drained), `join
/// --timeout` that timed out. What it did get is printed.
pub(crate) const EXIT_PARTIAL: u8 = 3;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked for: exit 0.
    Done,
    /// Less than asked for, by a timeout or a closed queue: exit [`EXIT_PARTIAL`].
    Partial,
}

/// Parses a duration: `500ms`, `2s`, `1.5s`, `20us`, `1m30s`, `2h`, `1h 5m` (a bare number is
/// seconds). One number with a unit may have a fraction; combinations are humantime's.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Some(d) = parse_simple(s) {
        return d;
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?}: {e} (e.g. 250ms, 1.5s, 1m30s, 2h)"))
}

/// One number (perhaps with a fraction) and one unit of s, ms, us, m or h; `None` if `s` is not
/// of that shape.
fn parse_simple(s: &str) -> Option<Result<Duration, String>> {
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}")))
}

/// A duration as a user wrote it: `100ms`, `1m 30s`.
pub(crate) fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
