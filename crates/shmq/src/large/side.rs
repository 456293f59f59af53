//! Where the side segments of a queue's (or pipe's) large messages live (the parent module,
//! `large`, makes, reads and sweeps them; this module only says where, and keeps an anonymous
//! queue's anchor). A side segment is the file `<dir>/<prefix>.big.<pid>.<start>.<n>`:
//!
//! | backing | dir | prefix |
//! |---|---|---|
//! | named (`/dev/shm/q`) | `/dev/shm` | `q` |
//! | file (`/path/to/q.dat`) | `/path/to` | `q.dat` |
//! | anonymous (shared by `fork`) | `/dev/shm` | `.shmq-anon-<instance id, 16 hex digits>` |
//!
//! An anonymous queue has no name that outlives it, so its creator also makes an **anchor**,
//! the empty file `/dev/shm/<prefix>`, and holds a shared `flock` on it through a descriptor
//! that forked children inherit (one open file description, so one lock for the whole process
//! tree; `exec` closes it, as it unmaps the queue). The lock is gone exactly when no process
//! holds the queue any more (dropped, exited or killed). Then the side segments can go: the
//! process that drops the last handle takes the lock exclusively and removes them and the
//! anchor; after a SIGKILL of every holder, the next anonymous queue made on the machine does
//! it for every anchor nobody locks (`docs/protocol.md`, "Large messages").
//!
//! This module knows nothing of rings and messages.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sys;

/// What the prefix of an anonymous queue's side segments (and its anchor's name) starts with;
/// names beginning with it are reserved.
pub(crate) const ANON_PREFIX: &str = ".shmq-anon-";

/// The directory and name prefix of one queue's side segments.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    dir: PathBuf,
    prefix: String,
    /// An anonymous queue's anchor (this process's share of its lock).
    #[allow(dead_code, reason = "held for its Drop")]
    anchor: Option<Arc<Anchor>>,
}

impl Place {
    /// The side segments of the named segment `name`: `/dev/shm/<name>.big.*`.
    pub(crate) fn named(name: &str) -> Place {
        Place {
            dir: PathBuf::from(sys::SHM_DIR),
            prefix: name.to_owned(),
            anchor: None,
        }
    }

    /// The side files of the file-backed segment at `path`: `<path>.big.*`, in its directory.
    /// `None` for a path without a file name.
    pub(crate) fn file(path: &Path) -> Option<Place> {
        let prefix = path.file_name()?.to_str()?.to_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        Some(Place {
            dir,
            prefix,
            anchor: None,
        })
    }

    /// The side segments of the anonymous segment whose instance id is `instance`, with its
    /// anchor made (or joined, for a second handle of this process) and locked shared. Removes
    /// first what anonymous queues of dead process trees left.
    ///
    /// # Errors
    ///
    /// If the anchor cannot be made or locked (no `/dev/shm`, no space, no `flock`).
    pub(crate) fn anonymous(instance: u64) -> std::io::Result<Place> {
        reap_orphans();
        let prefix = format!("{ANON_PREFIX}{instance:016x}");
        let anchor = Anchor::take(&prefix)?;
        Ok(Place {
            dir: PathBuf::from(sys::SHM_DIR),
            prefix,
            anchor: Some(Arc::new(anchor)),
        })
    }

    /// The directory the side segments are in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// What their names start with (followed by `.big.`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The path of the side segment `name` (a name made from [`prefix`](Self::prefix)).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// This process's hold on an anonymous queue's anchor: a descriptor with a shared `flock`.
/// Dropped (the last handle of the queue in this process), it closes the descriptor and, if
/// no other process holds the queue any more, removes the queue's side segments and the
/// anchor.
#[derive(Debug)]
struct Anchor {
    prefix: String,
    fd: Option<OwnedFd>,
}

impl Anchor {
    /// Makes (or opens) `/dev/shm/<prefix>` and locks it shared; checks afterwards that the
    /// name still names the locked file (a sweeper may have removed an unlocked anchor
    /// between the two), and tries again if not.
    fn take(prefix: &str) -> std::io::Result<Anchor> {
        let path = Path::new(sys::SHM_DIR).join(prefix);
        let mut last = None;
        for _ in 0..8 {
            let fd = match sys::create_at(&path, crate::segment::DEFAULT_MODE) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    sys::open_at(&path, false)
                }
                r => r,
            };
            let fd = match fd {
                Ok(fd) => fd,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            sys::flock(fd.as_fd(), false)?;
            let named = sys::open_at(&path, false).and_then(|n| sys::file_id(n.as_fd()));
            if named.ok() == sys::file_id(fd.as_fd()).ok() {
                return Ok(Anchor {
                    prefix: prefix.to_owned(),
                    fd: Some(fd),
                });
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the anchor kept disappearing")))
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        // Our share of the lock first: the anchor is free once every holder has done this.
        drop(self.fd.take());
        reap(&self.prefix);
    }
}

/// If nobody holds the anonymous queue of anchor `prefix` (its lock is free), removes its side
/// segments and then the anchor. Returns whether it did.
fn reap(prefix: &str) -> bool {
    reap_in(Path::new(sys::SHM_DIR), prefix)
}

/// [`reap`] in directory `dir` (tests use another than `/dev/shm`).
fn reap_in(dir: &Path, prefix: &str) -> bool {
    let path = dir.join(prefix);
    let Ok(fd) = sys::open_at(&path, false) else {
        return false;
    };
    if !sys::flock(fd.as_fd(), true).unwrap_or(false) {
        return false;
    }
    let sides = format!("{prefix}.big.");
    for n in names_in(dir) {
        if n.starts_with(&sides) {
            let _ = std::fs::remove_file(dir.join(n));
        }
    }
    // Last: an anchor left by a reaper killed before this line is reaped again.
    std::fs::remove_file(&path).is_ok()
}

/// The file names in `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// The anchors in `dir` (their file names).
fn anchors_in(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(ANON_PREFIX) && !n.contains(".big."))
        .collect()
}

/// Reaps every anchor in `/dev/shm` that no process locks: the anonymous queues of process
/// trees that were killed (nobody dropped them). Returns the anchors reaped.
pub(crate) fn reap_orphans() -> Vec<String> {
    reap_orphans_in(Path::new(sys::SHM_DIR))
}

fn reap_orphans_in(dir: &Path) -> Vec<String> {
    anchors_in(dir)
        .into_iter()
        .filter(|a| reap_in(dir, a))
        .collect()
}

/// [`reap`] of `anchor` in `/dev/shm`, if it is an anchor's name (not a side segment's, no
/// path).
pub(crate) fn reap_orphan(anchor: &str) -> bool {
    anchors_in(Path::new(sys::SHM_DIR))
        .iter()
        .any(|a| a == anchor)
        && reap(anchor)
}

/// The anchors in `/dev/shm` that no process locks now (what [`reap_orphans`] would reap),
/// with the bytes of their side segments; removes nothing.
pub(crate) fn orphans() -> Vec<(String, u64)> {
    orphans_in(Path::new(sys::SHM_DIR))
}

fn orphans_in(dir: &Path) -> Vec<(String, u64)> {
    anchors_in(dir)
        .into_iter()
        .filter(|a| {
            // The lock goes with the descriptor at the end of the closure.
            sys::open_at(&dir.join(a), false)
                .is_ok_and(|fd| sys::flock(fd.as_fd(), true).unwrap_or(false))
        })
        .map(|a| {
            let sides = format!("{a}.big.");
            let bytes = names_in(dir)
                .iter()
                .filter(|n| n.starts_with(&sides))
                .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
                .map(|m| m.len())
                .sum();
            (a, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_of_files_are_beside_the_file() {
        let p = Place::file(Path::new("/tmp/x/q.dat")).unwrap();
        assert_eq!((p.dir(), p.prefix()), (Path::new("/tmp/x"), "q.dat"));
        assert_eq!(
            p.path("q.dat.big.1.2.3"),
            Path::new("/tmp/x/q.dat.big.1.2.3")
        );
        let p = Place::file(Path::new("q.dat")).unwrap();
        assert_eq!(p.dir(), Path::new("."));
        assert!(Place::file(Path::new("/")).is_none());
        let p = Place::named("jobs");
        assert_eq!(
            p.path("jobs.big.1.2.3"),
            Path::new("/dev/shm/jobs.big.1.2.3")
        );
    }

    #[test]
    fn an_anchor_is_reaped_only_once_nobody_holds_it() {
        let instance = 0x5eed_0000_0000_0000 | u64::from(std::process::id());
        let a = Place::anonymous(instance).unwrap();
        let b = Place::anonymous(instance).unwrap();
        let anchor = Path::new(sys::SHM_DIR).join(a.prefix());
        let side = a.path(&format!("{}.big.1.2.3", a.prefix()));
        std::fs::write(&side, b"x").unwrap();
        assert!(!reap(a.prefix()), "held by this process");
        drop(a);
        assert!(anchor.exists() && side.exists(), "b still holds it");
        drop(b);
        assert!(!anchor.exists() && !side.exists(), "the last drop reaps");
    }

    #[test]
    fn unheld_anchors_are_listed_as_orphans_with_their_bytes_and_reaped() {
        // In a directory of its own: anonymous queues made by other tests meanwhile reap the
        // orphans of /dev/shm.
        let dir = std::env::temp_dir().join(format!("shmq-test-orphans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let orphan = format!("{ANON_PREFIX}{:016x}", 1);
        let (anchor, side) = (dir.join(&orphan), dir.join(format!("{orphan}.big.1.2.3")));
        std::fs::write(&anchor, b"").unwrap();
        std::fs::write(&side, vec![1u8; 5000]).unwrap();
        // A held one: its anchor locked shared, as a live queue's holder does.
        let held = format!("{ANON_PREFIX}{:016x}", 2);
        let held_side = dir.join(format!("{held}.big.1.2.3"));
        std::fs::write(dir.join(&held), b"").unwrap();
        std::fs::write(&held_side, b"x").unwrap();
        let lock = sys::open_at(&dir.join(&held), false).unwrap();
        sys::flock(lock.as_fd(), false).unwrap();
        assert_eq!(orphans_in(&dir), vec![(orphan.clone(), 5000)]);
        assert!(anchor.exists() && side.exists(), "listing removes nothing");
        assert_eq!(reap_orphans_in(&dir), vec![orphan]);
        assert!(!anchor.exists() && !side.exists());
        assert!(
            dir.join(&held).exists() && held_side.exists(),
            "a held one stays"
        );
        drop(lock);
        assert_eq!(reap_orphans_in(&dir), vec![held]);
        assert_eq!(names_in(&dir), Vec::<String>::new());
        std::fs::remove_dir(&dir).unwrap();
    }
}
