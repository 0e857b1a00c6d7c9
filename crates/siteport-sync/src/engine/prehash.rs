//! Local content hashes taken ahead of the planner. A machine with no journal of the site (a
//! CI runner, a fresh clone) must hash every file the server's state names before it can call
//! one unchanged; done one file at a time inside the planner that is the whole cost of such a
//! run. So the hashing starts as soon as the local scan is done, on a few threads, while the
//! remote side is still being listed and the state downloaded, and whatever the planner
//! still needs afterwards is hashed on the same threads before it runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::journal::{JournalRecord, hash_reader};
use crate::local_fs::{FileId, LocalRoot};
use crate::remote::EntryKind;
use crate::tree::Tree;

/// One file to hash.
#[derive(Clone)]
pub(super) struct Item {
    /// Its path in the tree.
    path: String,
    /// Where to read it (a link's target under the root, else `path`).
    from: String,
    /// Which file it must be.
    id: Option<FileId>,
    size: u64,
}

/// Hashes by tree path.
pub(super) type Hashes = HashMap<String, String>;

/// The files whose content the stat cache cannot vouch for (every file with `checksum`):
/// the ones a planner comparing against a record would have to read.
pub(super) fn uncached(
    local: &Tree,
    journal: &BTreeMap<String, JournalRecord>,
    checksum: bool,
) -> Vec<Item> {
    local
        .entries
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .filter(|(p, e)| {
            checksum
                || !journal
                    .get(p.as_str())
                    .is_some_and(|j| e.stat.is_some_and(|st| j.local_matches(&st)))
        })
        .map(|(p, e)| {
            let (from, id) = e.read_from(p);
            Item {
                path: p.clone(),
                from: from.to_string(),
                id,
                size: e.size,
            }
        })
        .collect()
}

/// Of `items`, those not hashed yet whose remote counterpart has the same size: a file of
/// another size, or with none, is sent whatever its content.
pub(super) fn still_needed(items: &[Item], remote: &Tree, done: &Hashes) -> Vec<Item> {
    items
        .iter()
        .filter(|i| !done.contains_key(&i.path))
        .filter(|i| {
            remote
                .entries
                .get(&i.path)
                .is_some_and(|r| r.kind == EntryKind::File && r.size == i.size)
        })
        .cloned()
        .collect()
}

/// How many threads hash: the cores there are, at most 4 (past that the disk, not the CPU,
/// decides), at least 1.
fn threads(items: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, 4).min(items.max(1))
}

/// Hashes `items` until done or until `stop` is set (each thread finishes the file it is
/// on). A file that cannot be opened as the scan saw it is left out: the planner meets it
/// again and reports it.
pub(super) fn hash_items(root: &LocalRoot, items: &[Item], stop: &AtomicBool) -> Hashes {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                break;
            };
            if let Ok((f, _)) = root.open_scanned(&item.from, item.id)
                && let Ok(h) = hash_reader(Stoppable { inner: f, stop })
            {
                out.push((item.path.clone(), h));
            }
        }
        out
    };
    let n = threads(items.len());
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..n).map(|_| s.spawn(work)).collect();
        let mut all: Hashes = work().into_iter().collect();
        for h in helpers {
            // A hashing thread cannot panic on a file's content; if it did, its files are
            // simply hashed again by the planner.
            if let Ok(part) = h.join() {
                all.extend(part);
            }
        }
        all
    })
}

/// A reader that fails once `stop` is set: a big file's hash is given up on at the next
/// chunk, so stopping never waits for a whole 1 GiB file to be read.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: std::io::Read> std::io::Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("hashing stopped"));
        }
        self.inner.read(buf)
    }
}

/// Hashing that runs in the background while the remote side is scanned.
pub(super) struct Ahead {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Hashes>,
    root: Arc<LocalRoot>,
    items: Arc<Vec<Item>>,
}

impl Ahead {
    /// Starts hashing `items` on the blocking pool.
    pub(super) fn start(root: Arc<LocalRoot>, items: Vec<Item>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let items = Arc::new(items);
        let task = {
            let (root, items, flag) = (root.clone(), items.clone(), stop.clone());
            tokio::task::spawn_blocking(move || hash_items(&root, &items, &flag))
        };
        Self {
            stop,
            task,
            root,
            items,
        }
    }

    /// Stops the background hashing, then hashes what the planner still needs now that the
    /// remote tree is known (see [`still_needed`]): every hash the planner will ask for.
    pub(super) async fn finish(self, remote: &Tree) -> Hashes {
        self.stop.store(true, Ordering::Relaxed);
        let mut done = self.task.await.unwrap_or_default();
        let rest = still_needed(&self.items, remote, &done);
        if !rest.is_empty() {
            let root = self.root;
            let more = tokio::task::spawn_blocking(move || {
                hash_items(&root, &rest, &AtomicBool::new(false))
            })
            .await
            .unwrap_or_default();
            done.extend(more);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::hash_file;
    use crate::tree::{Excludes, TreeEntry, scan_local};

    fn site() -> (tempfile::TempDir, Tree, LocalRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [("a.html", 10), ("b.html", 2000), ("sub/c.css", 70_000)] {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![name.as_bytes()[0]; len]).unwrap();
        }
        let tree = scan_local(dir.path(), &Excludes::none()).unwrap();
        let root = LocalRoot::open(dir.path()).unwrap();
        (dir, tree, root)
    }

    fn record(tree: &Tree, path: &str) -> JournalRecord {
        let mut r = JournalRecord {
            size: 0,
            local_mtime_ns: None,
            local_ctime_ns: None,
            local_ino: None,
            remote_size: 0,
            remote_mtime_ns: None,
            hash: "from-the-journal".into(),
        };
        r.set_local(&tree.entries[path].stat.unwrap());
        r
    }

    fn paths(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn only_files_the_stat_cache_cannot_vouch_for_are_hashed() {
        let (_dir, tree, _) = site();
        let mut journal = BTreeMap::new();
        journal.insert("a.html".to_string(), record(&tree, "a.html"));
        let mut stale = record(&tree, "b.html");
        stale.local_ino = stale.local_ino.map(|i| i + 1);
        journal.insert("b.html".to_string(), stale);
        assert_eq!(
            paths(&uncached(&tree, &journal, false)),
            ["b.html", "sub/c.css"]
        );
        // --checksum trusts no stat cache.
        assert_eq!(
            paths(&uncached(&tree, &journal, true)),
            ["a.html", "b.html", "sub/c.css"]
        );
    }

    #[test]
    fn hashes_equal_the_journal_hash_of_each_file() {
        let (dir, tree, root) = site();
        let items = uncached(&tree, &BTreeMap::new(), false);
        let got = hash_items(&root, &items, &AtomicBool::new(false));
        assert_eq!(got.len(), 3);
        for (path, hash) in &got {
            assert_eq!(hash, &hash_file(&dir.path().join(path)).unwrap(), "{path}");
        }
        assert!(hash_items(&root, &items, &AtomicBool::new(true)).is_empty());
    }

    #[test]
    fn stopping_gives_up_a_big_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let big = std::fs::File::create(dir.path().join("big.bin")).unwrap();
        big.set_len(2 << 30).unwrap(); // sparse: 2 GiB of zeros, seconds to hash
        let tree = scan_local(dir.path(), &Excludes::none()).unwrap();
        let root = LocalRoot::open(dir.path()).unwrap();
        let items = uncached(&tree, &BTreeMap::new(), false);
        let stop = AtomicBool::new(false);
        let started = std::time::Instant::now();
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| hash_items(&root, &items, &stop));
            std::thread::sleep(std::time::Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap()
        });
        assert!(got.is_empty(), "a hash given up on is not a hash");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "stopped after {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_file_replaced_since_the_scan_is_left_to_the_planner() {
        let (dir, tree, root) = site();
        let p = dir.path().join("b.html");
        // Written beside and renamed over, so the inode cannot be the old one's.
        let other = dir.path().join("b.new");
        std::fs::write(&other, b"another file under the name").unwrap();
        std::fs::rename(&other, &p).unwrap();
        let items = uncached(&tree, &BTreeMap::new(), false);
        let got = hash_items(&root, &items, &AtomicBool::new(false));
        assert!(!got.contains_key("b.html"));
        assert!(got.contains_key("a.html"));
    }

    #[test]
    fn after_the_listing_only_same_size_files_not_hashed_yet_remain() {
        let (_dir, tree, _) = site();
        let items = uncached(&tree, &BTreeMap::new(), false);
        let mut remote = Tree::default();
        remote
            .entries
            .insert("a.html".into(), TreeEntry::file(10, None, false));
        remote
            .entries
            .insert("b.html".into(), TreeEntry::file(2000, None, false));
        remote
            .entries
            .insert("sub/c.css".into(), TreeEntry::file(1, None, false));
        let done: Hashes = [("a.html".to_string(), "h".to_string())].into();
        assert_eq!(paths(&still_needed(&items, &remote, &done)), ["b.html"]);
    }
}
