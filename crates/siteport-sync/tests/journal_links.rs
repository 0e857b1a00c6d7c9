//! Issue 18, defect 2: the journal is never written through a link another user planted, and
//! a journal directory another user can write in is refused.
//!
//! For each name a journal run writes in the state dir (the journal, its `.lock`, its `.log`,
//! the snapshot's temp names), a symlink to a canary file outside the dir is planted at that
//! name; a run then either refuses with a clear message or writes a regular file in place of
//! the link, and the canary keeps its bytes and its mtime. The tests never write through the
//! links themselves.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use siteport_sync::{Journal, JournalRecord};

/// A canary file outside the journal dir, with an mtime in the past so a write shows.
struct Canary {
    path: PathBuf,
    bytes: Vec<u8>,
    mtime: SystemTime,
}

impl Canary {
    fn new(dir: &Path, name: &str) -> Self {
        let path = dir.join(name);
        let bytes = format!("canary {name}: root-only bytes\n").into_bytes();
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mtime = SystemTime::now() - Duration::from_secs(3600);
        filetime::set_file_mtime(&path, filetime::FileTime::from_system_time(mtime)).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        Self { path, bytes, mtime }
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "{} was written through a link",
            self.path.display()
        );
        assert_eq!(
            std::fs::metadata(&self.path).unwrap().modified().unwrap(),
            self.mtime,
            "{} was modified through a link",
            self.path.display()
        );
    }
}

fn rec() -> JournalRecord {
    JournalRecord {
        size: 3,
        local_mtime_ns: Some(1),
        local_ctime_ns: None,
        local_ino: None,
        remote_size: 3,
        remote_mtime_ns: None,
        hash: "abc".into(),
    }
}

/// A journal dir (0700) and a canary dir beside it.
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let jdir = t.path().join("journal");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(&jdir).unwrap();
    std::fs::set_permissions(&jdir, std::fs::Permissions::from_mode(0o700)).unwrap();
    (t, jdir, outside)
}

/// One journal run: open, record a file, compact.
fn run(journal: &Path) -> siteport_sync::Result<()> {
    let mut j = Journal::open(journal)?;
    j.record("index.html", rec())?;
    j.compact()
}

/// Plants a link to a canary at `site.json<suffix>`, runs the journal, and checks that the
/// run refused it, saying why, and that the canary and the link are as they were.
fn refuses_a_link_at(suffix: &str) {
    let (_t, jdir, outside) = dirs();
    let canary = Canary::new(&outside, &format!("target{suffix}"));
    let j = jdir.join("site.json");
    let planted = jdir.join(format!("site.json{suffix}"));
    std::os::unix::fs::symlink(&canary.path, &planted).unwrap();
    let outcome = run(&j);
    canary.assert_untouched();
    let e = outcome.expect_err("a link at a journal name was used");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let m = std::fs::symlink_metadata(&planted).unwrap();
    assert!(m.file_type().is_symlink(), "the link itself was replaced");
}

#[test]
fn a_link_at_the_journal_name_is_not_followed() {
    // Refused when read: the journal is opened without following links.
    refuses_a_link_at("");
}

#[test]
fn a_link_at_the_lock_name_is_not_followed() {
    refuses_a_link_at(".lock");
}

#[test]
fn a_link_at_the_log_name_is_not_followed() {
    refuses_a_link_at(".log");
}

#[test]
fn a_link_planted_at_the_log_name_during_a_run_is_not_followed() {
    // The log is opened at the first record, after the journal was opened: plant it between.
    let (_t, jdir, outside) = dirs();
    let canary = Canary::new(&outside, "late-log-target");
    let j = jdir.join("site.json");
    let mut journal = Journal::open(&j).unwrap();
    std::os::unix::fs::symlink(&canary.path, jdir.join("site.json.log")).unwrap();
    let e = journal.record("index.html", rec()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    canary.assert_untouched();
}

#[test]
fn links_at_the_snapshot_temp_names_are_not_followed() {
    // The snapshot is written to a temp name (`.journal-XXXXXX`, random) created with
    // O_CREAT | O_EXCL and renamed over the journal. Plant links at every name a run has
    // left or used in the dir, and at a spread of temp-like names: the run must write a
    // regular journal and leave every canary alone.
    let (_t, jdir, outside) = dirs();
    let j = jdir.join("site.json");
    run(&j).unwrap();
    std::fs::remove_file(&j).unwrap();
    let mut canaries = Vec::new();
    for n in 0..64 {
        let c = Canary::new(&outside, &format!("tmp-target-{n}"));
        std::os::unix::fs::symlink(&c.path, jdir.join(format!(".journal-{n:06}"))).unwrap();
        canaries.push(c);
    }
    run(&j).unwrap();
    for c in &canaries {
        c.assert_untouched();
    }
    let m = std::fs::symlink_metadata(&j).unwrap();
    assert!(m.file_type().is_file(), "the journal is a regular file");
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_journal_dir_others_can_write_is_refused_with_the_fix() {
    let (_t, jdir, _outside) = dirs();
    std::fs::set_permissions(&jdir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let j = jdir.join("site.json");
    let e = run(&j).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("writable by group or others"), "{msg}");
    let hint = e.hint().unwrap_or_default();
    assert!(
        hint.contains(&format!("chmod 700 {}", jdir.display())),
        "{hint}"
    );
    assert!(
        !j.exists() && !jdir.join("site.json.lock").exists(),
        "nothing is written in a refused dir"
    );
}

#[test]
fn a_journal_dir_of_another_user_is_refused() {
    if rustix_euid() != 0 {
        return; // Only root can give a directory away; the suite runs as root.
    }
    let (_t, jdir, _outside) = dirs();
    std::os::unix::fs::chown(&jdir, Some(65534), None).unwrap();
    let e = run(&jdir.join("site.json")).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    assert!(e.hint().unwrap_or_default().contains("chown 0"), "{e:?}");
}

fn rustix_euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just created is its effective uid.
    let t = tempfile::tempfile().unwrap();
    t.metadata().unwrap().uid()
}
