//! inotify on every folder of the model: a write, an attribute change, a
//! file created, deleted or renamed wakes the watch at once, and the watch
//! then looks at the whole tree with a stat sweep (so no event needs to be
//! interpreted, and a lost one costs nothing but time).
//!
//! Each folder is watched through the descriptor the model walk opened
//! (`/proc/self/fd/N`), never by a path string that a symlink could
//! redirect. What inotify cannot promise is said, not hidden: a queue
//! overflow, or a watch limit (`fs.inotify.max_user_watches`, or
//! `MODELGATE_WATCH_MAX_INOTIFY`) that leaves folders unwatched, is
//! reported to the caller, which logs it and sweeps at once.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::model::{ModelRoot, Stamp};

/// Everything that changes a file or a folder's entries; not reads, opens
/// or closes without a write (no false alarm from the server).
const MASK: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// What a folder is, whatever its path: its device and inode.
type FolderId = (u64, u64);

/// The inotify instance and the folders it watches.
pub struct Notify {
    inotify: Option<Inotify>,
    watched: BTreeMap<FolderId, WatchDescriptor>,
    /// At most this many watches (`MODELGATE_WATCH_MAX_INOTIFY`).
    limit: Option<usize>,
}

/// How much of the model inotify covers after [`Notify::sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every folder.
    Full,
    /// Only `watched` of `folders`, for the reason given.
    Partial {
        /// Folders watched.
        watched: usize,
        /// Folders in the model.
        folders: usize,
        /// Why not all, in words an operator can act on.
        why: String,
    },
}

/// What reading the queue found.
#[derive(Debug, Default)]
pub struct Events {
    /// Something happened.
    pub any: bool,
    /// The kernel dropped events (`IN_Q_OVERFLOW`).
    pub overflow: bool,
}

impl Notify {
    /// A new instance; `Err` says why there is none (the caller sweeps).
    pub fn new(limit: Option<usize>) -> (Self, Result<(), String>) {
        let made = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC);
        let why = match &made {
            Ok(_) => Ok(()),
            Err(Errno::EMFILE) => Err(
                "no inotify instance: the limit fs.inotify.max_user_instances is reached".into(),
            ),
            Err(e) => Err(format!("no inotify instance: {}", e.desc())),
        };
        let notify = Self {
            inotify: made.ok(),
            watched: BTreeMap::new(),
            limit,
        };
        (notify, why)
    }

    /// The descriptor to poll, if there is an instance.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.inotify.as_ref().map(AsFd::as_fd)
    }

    /// Watches every folder of `survey` (opened below `root`) not yet
    /// watched, and forgets those that are gone.
    pub fn sync(&mut self, root: &ModelRoot, survey: &BTreeMap<String, Stamp>) -> Coverage {
        let folders: BTreeMap<FolderId, &str> = survey
            .iter()
            .filter(|(_, s)| s.is_dir())
            .map(|(name, s)| ((s.dev, s.ino), name.as_str()))
            .collect();
        let Some(inotify) = &self.inotify else {
            return Coverage::Partial {
                watched: 0,
                folders: folders.len(),
                why: "inotify is not available".into(),
            };
        };
        self.watched.retain(|id, wd| {
            let keep = folders.contains_key(id);
            if !keep {
                // The kernel has removed it already if the folder is gone.
                let _ = inotify.rm_watch(*wd);
            }
            keep
        });
        let mut why = None;
        for (id, name) in &folders {
            if self.watched.contains_key(id) {
                continue;
            }
            if self.limit.is_some_and(|limit| self.watched.len() >= limit) {
                why = Some(format!(
                    "MODELGATE_WATCH_MAX_INOTIFY={} is lower than the number of folders",
                    self.limit.unwrap_or_default()
                ));
                break;
            }
            let Ok(fd) = root.open_folder(name) else {
                // Gone or replaced since the survey: the next one sees it.
                continue;
            };
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            match inotify.add_watch(path.as_str(), MASK) {
                Ok(wd) => {
                    self.watched.insert(*id, wd);
                }
                Err(Errno::ENOSPC) => {
                    why = Some(
                        "the inotify watch limit is reached (fs.inotify.max_user_watches on the node)"
                            .into(),
                    );
                    break;
                }
                Err(e) => {
                    why = Some(format!("cannot watch folder {name:?}: {}", e.desc()));
                    break;
                }
            }
        }
        match why {
            None => Coverage::Full,
            Some(why) => Coverage::Partial {
                watched: self.watched.len(),
                folders: folders.len(),
                why,
            },
        }
    }

    /// Reads every event queued now.
    pub fn drain(&self) -> Events {
        let mut found = Events::default();
        let Some(inotify) = &self.inotify else {
            return found;
        };
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            found.any = true;
            found.overflow |= events
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW));
        }
        found
    }
}
