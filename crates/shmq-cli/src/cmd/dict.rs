//! The shared counter dict and the named lock from the command line: `dict read|set|add` and
//! `lock status`.

use anyhow::{Result, bail};
use serde_json::Value;
use shmq::substrate::layout::Kind;
use shmq_dict::{Lock, SharedDict};

use super::admin::{kind_of, lock_json};

/// `shmq dict ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DictCmd {
    /// Print a dict's keys and values, one `KEY VALUE` line each in key order (or, given KEY,
    /// its value alone; a missing key is an error).
    Read {
        /// Dict name.
        name: String,
        /// Only this key.
        key: Option<String>,
        /// One JSON object of every key and value.
        #[arg(long, conflicts_with = "key")]
        json: bool,
    },
    /// Set KEY to VALUE (a new key takes an entry; a full dict refuses it).
    Set {
        /// Dict name.
        name: String,
        /// The key.
        key: String,
        /// The value, a signed 64-bit integer.
        #[arg(allow_negative_numbers = true)]
        value: i64,
    },
    /// Add DELTA to KEY (a missing key counts from 0) in one atomic step; print the new value.
    Add {
        /// Dict name.
        name: String,
        /// The key.
        key: String,
        /// What to add, a signed 64-bit integer (negative to subtract).
        #[arg(allow_negative_numbers = true)]
        delta: i64,
    },
}

/// `shmq lock ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LockCmd {
    /// Print whether a named lock is free or held, and by which thread (alive or dead), without
    /// taking it. Also works on a dict (its lock).
    Status {
        /// Lock (or dict) name.
        name: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn open_dict(name: &str) -> Result<SharedDict> {
    match kind_of(name)? {
        Kind::Dict => Ok(SharedDict::open(name)?),
        other => bail!("{name:?} is a {other}, not a dict"),
    }
}

pub(crate) fn dict(cmd: &DictCmd) -> Result<()> {
    match cmd {
        DictCmd::Read { name, key, json } => {
            let d = open_dict(name)?;
            if let Some(key) = key {
                match d.get(key)? {
                    Some(v) => outln!("{v}"),
                    None => bail!("{name} has no key {key:?}"),
                }
                return Ok(());
            }
            let all = d.snapshot()?;
            if *json {
                let obj: serde_json::Map<String, Value> =
                    all.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
                outln!("{}", Value::Object(obj));
            } else {
                for (k, v) in all {
                    outln!("{k} {v}");
                }
            }
        }
        DictCmd::Set { name, key, value } => {
            let d = open_dict(name)?;
            d.insert(key, *value).map_err(|e| full_hint(e, name))?;
        }
        DictCmd::Add { name, key, delta } => {
            let d = open_dict(name)?;
            let v = d.add(key, *delta).map_err(|e| full_hint(e, name))?;
            outln!("{v}");
        }
    }
    Ok(())
}

/// A dict error, with, when the dict is full, how to make a larger one.
fn full_hint(e: shmq_dict::DictError, name: &str) -> anyhow::Error {
    match e {
        shmq_dict::DictError::Full { capacity } => anyhow::anyhow!(
            "{name}: {e}: create a larger dict (shmq create dict NEW-NAME --capacity {}) and \
             move the keys there",
            capacity.saturating_mul(2).max(1)
        ),
        e => e.into(),
    }
}

pub(crate) fn lock(cmd: &LockCmd) -> Result<()> {
    let LockCmd::Status { name, json } = cmd;
    let state = match kind_of(name)? {
        Kind::Lock => Lock::inspect(name)?,
        Kind::Dict => SharedDict::inspect(name)?.lock,
        other => bail!("{name:?} is a {other}, not a lock or a dict"),
    };
    if *json {
        outln!("{}", lock_json(&state));
    } else {
        outln!("{name}: {state}");
    }
    Ok(())
}
