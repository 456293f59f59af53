//! One thread putting and getting in turn, for `scripts/instructions.sh` (callgrind):
//! `put_get MECHANISM SIZE WARMUP COUNT`, MECHANISM one of shmq, shmq_vec, vyukov, floor. See
//! `shmq_cli::workload::calls`.

use anyhow::{Context, Result, bail};
use shmq_cli::workload::calls::{Over, put_get};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [over, size, warmup, count] = &args[..] else {
        bail!("usage: put_get shmq|shmq_vec|vyukov|floor SIZE WARMUP COUNT");
    };
    let number = |s: &str, what: &str| -> Result<u64> {
        s.parse()
            .with_context(|| format!("{what} {s:?} is not a number"))
    };
    let size = usize::try_from(number(size, "size")?)?;
    put_get(
        Over::parse(over)?,
        size,
        number(warmup, "warmup")?,
        number(count, "count")?,
    )
}
