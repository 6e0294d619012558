//! Where the model is: a folder mounted here, or a folder inside another
//! container of the pod (a KServe modelcar: with `shareProcessNamespace:
//! true` the model is `/proc/<pid>/root/models`).
//!
//! The other container is found by its process's name (`comm`, what `ps`
//! shows: the kubelet gives no container name to a process) among the
//! processes in another mount namespace whose root holds the folder. The
//! folder is opened below `/proc/<pid>/root` with `openat2(RESOLVE_IN_ROOT)`
//! ([`crate::node::open_folder_in`]): a link in that container that says
//! `/etc` means its `/etc`, never ours. It is found again at every sweep,
//! so a restarted container (a new process, a new root) is followed, and
//! a container that is gone is a drift, not a stale view.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the model is.
#[derive(Debug)]
pub enum Place {
    /// A folder, by its path here.
    Folder(PathBuf),
    /// A folder inside the root of another container's process.
    Container {
        /// The process's name (`comm`).
        process: String,
        /// The folder, as seen inside that container.
        path: String,
        /// The process found last, tried first.
        last: Mutex<Option<u32>>,
    },
}

/// The model located for one use: a path that opens it, and its name.
#[derive(Debug)]
pub struct Located {
    /// A path that leads to the folder (`/proc/self/fd/N` for a container:
    /// valid while this value lives).
    pub path: PathBuf,
    /// What logs and measurements call it.
    pub shown: PathBuf,
    _held: Option<OwnedFd>,
}

impl Place {
    /// Finds the folder now.
    pub fn locate(&self) -> Result<Located, String> {
        match self {
            Self::Folder(path) => Ok(Located {
                path: path.clone(),
                shown: path.clone(),
                _held: None,
            }),
            Self::Container {
                process,
                path,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let tried =
                    last.and_then(|pid| open_in(pid, process, path).ok().map(|fd| (pid, fd)));
                let (pid, fd) = match tried {
                    Some(found) => found,
                    None => find(process, path)?,
                };
                *last = Some(pid);
                Ok(Located {
                    path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                    shown: PathBuf::from(format!(
                        "/proc/{pid}/root/{}",
                        path.trim_start_matches('/')
                    )),
                    _held: Some(fd),
                })
            }
        }
    }
}

/// The folder `path` inside process `pid`'s root, if it is named `name`
/// and lives in another mount namespace than this one.
fn open_in(pid: u32, name: &str, path: &str) -> Result<OwnedFd, String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc.join("comm")).map_err(|e| e.to_string())?;
    if comm.trim_end() != name {
        return Err("another name".into());
    }
    let ns = |p: &Path| std::fs::read_link(p.join("ns/mnt")).map_err(|e| e.to_string());
    if ns(&proc)? == ns(Path::new("/proc/self"))? {
        return Err("this container".into());
    }
    crate::node::open_folder_in(&proc.join("root"), path)
}

/// The one container whose process is named `name` and holds `path`.
fn find(name: &str, path: &str) -> Result<(u32, OwnedFd), String> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("cannot list /proc: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut found: Option<(u32, OwnedFd)> = None;
    let mut why = Vec::new();
    for pid in pids {
        match open_in(pid, name, path) {
            Ok(fd) => {
                if let Some((first, _)) = &found {
                    // Processes of one container share its root folder.
                    let same = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
                        == std::fs::read_link(format!("/proc/{first}/ns/mnt")).ok();
                    if !same {
                        return Err(format!(
                            "MODELGATE_WATCH_CONTAINER={name}: processes {first} and {pid} are both named {name} and both hold {path}, in different containers; name the process more precisely"
                        ));
                    }
                    continue;
                }
                found = Some((pid, fd));
            }
            Err(e) if e != "another name" && e != "this container" => {
                why.push(format!("process {pid}: {e}"))
            }
            Err(_) => {}
        }
    }
    found.ok_or_else(|| {
        let tried = if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        };
        format!(
            "MODELGATE_WATCH_CONTAINER={name}: no process of that name in another container holds {path}{tried}; the pod needs shareProcessNamespace: true, and the name is the process's (ps -o comm), not the container's"
        )
    })
}
