//! Where the side segments of a queue's (or pipe's) large messages live (`crate::large` makes,
//! reads and sweeps them; this module only says where, and keeps an anonymous queue's
//! anchor). A side segment is the file `<dir>/<prefix>.big.<pid>.<start>.<n>`:
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
    let path = Path::new(sys::SHM_DIR).join(prefix);
    let Ok(fd) = sys::open_at(&path, false) else {
        return false;
    };
    if !sys::flock(fd.as_fd(), true).unwrap_or(false) {
        return false;
    }
    let sides = format!("{prefix}.big.");
    if let Ok(dir) = std::fs::read_dir(sys::SHM_DIR) {
        for n in dir.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
            if n.starts_with(&sides) {
                let _ = std::fs::remove_file(Path::new(sys::SHM_DIR).join(n));
            }
        }
    }
    // Last: an anchor left by a reaper killed before this line is reaped again.
    std::fs::remove_file(&path).is_ok()
}

/// Reaps every anchor in `/dev/shm` that no process locks: the anonymous queues of process
/// trees that were killed (nobody dropped them). Returns how many.
pub(crate) fn reap_orphans() -> usize {
    let Ok(dir) = std::fs::read_dir(sys::SHM_DIR) else {
        return 0;
    };
    let anchors: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(ANON_PREFIX) && !n.contains(".big."))
        .collect();
    anchors.iter().filter(|a| reap(a)).count()
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
}
