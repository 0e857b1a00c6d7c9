use std::time::UNIX_EPOCH;

use super::*;

fn t(secs: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn tree(entries: &[(&str, Option<(u64, u64)>)]) -> Tree {
    let mut tr = Tree::default();
    for (p, f) in entries {
        let e = match f {
            Some((size, mtime)) => TreeEntry {
                // The stat cache key a record made by `rec` holds for this (size, mtime).
                stat: Some(crate::journal::LocalStat {
                    size: *size,
                    mtime_ns: t(*mtime).map(to_ns),
                    ctime_ns: t(*mtime).map(to_ns),
                    ino: Some(1),
                }),
                ..TreeEntry::file(*size, t(*mtime), true)
            },
            None => TreeEntry::dir(),
        };
        tr.entries.insert(p.to_string(), e);
    }
    tr
}

fn precise() -> PlanOptions {
    PlanOptions {
        capabilities: Capabilities {
            precise_mtime: true,
            set_mtime: true,
            hash: None,
        },
        ..Default::default()
    }
}

fn rec(size: u64, local: u64, remote: Option<u64>, hash: &str) -> JournalRecord {
    JournalRecord {
        size,
        local_mtime_ns: t(local).map(to_ns),
        local_ctime_ns: t(local).map(to_ns),
        local_ino: Some(1),
        remote_size: size,
        remote_mtime_ns: remote.and_then(t).map(to_ns),
        hash: hash.into(),
    }
}

fn no_hash(p: &str) -> Option<String> {
    panic!("hasher called for {p}")
}

fn ops(plan: &Plan) -> Vec<(Op, &str, Reason)> {
    plan.actions
        .iter()
        .map(|a| (a.op, a.path.as_str(), a.reason))
        .collect()
}

#[test]
fn new_files_and_dirs_parents_first() {
    let local = tree(&[
        ("b", None),
        ("b/c", None),
        ("b/c/x.txt", Some((3, 10))),
        ("a.txt", Some((1, 10))),
    ]);
    let plan = plan_export(
        &local,
        &Tree::default(),
        &BTreeMap::new(),
        &precise(),
        &mut no_hash,
    );
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Mkdir, "b", Reason::New),
            (Op::Mkdir, "b/c", Reason::New),
            (Op::Upload, "a.txt", Reason::New),
            (Op::Upload, "b/c/x.txt", Reason::New),
        ]
    );
    assert_eq!(plan.summary().bytes, 4);
    assert_eq!(plan.summary().mkdir, 2);
}

#[test]
fn size_differs_wins() {
    let local = tree(&[("a", Some((5, 10)))]);
    let remote = tree(&[("a", Some((4, 99)))]);
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &precise(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::SizeDiffers)]);
}

#[test]
fn mtime_newer_only_with_precise_times() {
    let local = tree(&[("a", Some((5, 100)))]);
    let remote = tree(&[("a", Some((5, 50)))]);
    let plan = plan_export(
        &local,
        &remote,
        &BTreeMap::new(),
        &size_only(),
        &mut no_hash,
    );
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::MtimeNewer)]);
    // LIST times (imprecise): size equal and no journal means unchanged.
    let plan = plan_export(
        &local,
        &remote,
        &BTreeMap::new(),
        &PlanOptions {
            size_only: true,
            ..Default::default()
        },
        &mut no_hash,
    );
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
    // Within the one-second window: equal.
    let remote = tree(&[("a", Some((5, 100)))]);
    let plan = plan_export(
        &local,
        &remote,
        &BTreeMap::new(),
        &size_only(),
        &mut no_hash,
    );
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
    // Without --size-only and with nothing recording what the server has, a same-size file
    // cannot be proven equal: sent, and the plan says why in one note.
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &precise(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::Unproven)]);
    assert_eq!(plan.notes.len(), 1);
    assert!(
        plan.notes[0].contains("next export is exact"),
        "{:?}",
        plan.notes
    );
}

fn size_only() -> PlanOptions {
    PlanOptions {
        size_only: true,
        ..precise()
    }
}

#[test]
fn journal_trusted_over_server_clock_skew() {
    // Remote listed 3 hours "newer"/"older" than local: irrelevant, journal says in sync.
    let local = tree(&[("a", Some((5, 100)))]);
    let remote = tree(&[("a", Some((5, 100 + 3 * 3600)))]);
    let j = BTreeMap::from([("a".to_string(), rec(5, 100, Some(100 + 3 * 3600), "h"))]);
    let plan = plan_export(&local, &remote, &j, &precise(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
    assert!(plan.journal_updates.is_empty());
    // Local newer by mtime but journal matches remote and local: still unchanged.
    let local2 = tree(&[("a", Some((5, 100)))]);
    let remote2 = tree(&[("a", Some((5, 10)))]);
    let j2 = BTreeMap::from([("a".to_string(), rec(5, 100, Some(10), "h"))]);
    let plan = plan_export(&local2, &remote2, &j2, &precise(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
}

#[test]
fn remote_time_learnt_from_listing_after_upload() {
    let local = tree(&[("a", Some((5, 100)))]);
    let remote = tree(&[("a", Some((5, 777)))]);
    let j = BTreeMap::from([("a".to_string(), rec(5, 100, None, "h"))]);
    let plan = plan_export(&local, &remote, &j, &PlanOptions::default(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
    assert_eq!(plan.journal_updates.len(), 1);
    assert_eq!(plan.journal_updates[0].1.remote_mtime_ns, t(777).map(to_ns));
}

#[test]
fn same_size_edit_caught_by_hash() {
    let local = tree(&[("a", Some((5, 200)))]);
    let remote = tree(&[("a", Some((5, 100)))]);
    let j = BTreeMap::from([("a".to_string(), rec(5, 100, Some(100), "old"))]);
    let mut calls = 0;
    let plan = plan_export(&local, &remote, &j, &PlanOptions::default(), &mut |_| {
        calls += 1;
        Some("new".into())
    });
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::HashDiffers)]);
    assert_eq!(calls, 1);
    // Touched but identical: skip, and remember the new local time.
    let plan = plan_export(&local, &remote, &j, &PlanOptions::default(), &mut |_| {
        Some("old".into())
    });
    assert_eq!(ops(&plan), vec![(Op::Skip, "a", Reason::Unchanged)]);
    assert_eq!(plan.journal_updates[0].1.local_mtime_ns, t(200).map(to_ns));
    // Unreadable: sent anyway, flagged.
    let plan = plan_export(&local, &remote, &j, &PlanOptions::default(), &mut |_| None);
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::Unverified)]);
}

#[test]
fn remote_changed_by_someone_else_is_not_trusted() {
    // Journal records remote mtime 100, remote now lists 300: another client changed it,
    // so it is sent again whatever the times say.
    let local = tree(&[("a", Some((5, 400)))]);
    let remote = tree(&[("a", Some((5, 300)))]);
    let j = BTreeMap::from([("a".to_string(), rec(5, 400, Some(100), "h"))]);
    let plan = plan_export(&local, &remote, &j, &precise(), &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Upload, "a", Reason::RemoteChanged)]);
}

#[test]
fn checksum_mode_hashes_every_file() {
    let local = tree(&[
        ("a", Some((5, 100))),
        ("b", Some((5, 100))),
        ("c", Some((5, 100))),
    ]);
    let remote = tree(&[
        ("a", Some((5, 100))),
        ("b", Some((5, 100))),
        ("c", Some((5, 100))),
    ]);
    let j = BTreeMap::from([
        ("a".to_string(), rec(5, 100, Some(100), "ha")),
        ("b".to_string(), rec(5, 100, Some(100), "hb")),
    ]);
    let opts = PlanOptions {
        checksum: true,
        ..precise()
    };
    let mut hashed = Vec::new();
    let plan = plan_export(&local, &remote, &j, &opts, &mut |p| {
        hashed.push(p.to_string());
        Some(if p == "a" { "ha".into() } else { "zz".into() })
    });
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Upload, "b", Reason::Checksum),
            // No record: cannot be proven equal without a server hash.
            (Op::Upload, "c", Reason::Unproven),
            (Op::Skip, "a", Reason::Unchanged),
        ]
    );
    assert_eq!(
        hashed,
        vec!["a", "b"],
        "c has no record: no need to hash it"
    );
}

#[test]
fn kind_conflicts_and_blocked_children() {
    let local = tree(&[("d", None), ("d/x", Some((1, 1))), ("f", Some((1, 1)))]);
    let remote = tree(&[("d", Some((9, 1))), ("f", None)]);
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &precise(), &mut no_hash);
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Conflict, "d", Reason::KindConflict),
            (Op::Conflict, "d/x", Reason::Blocked),
            (Op::Conflict, "f", Reason::KindConflict),
        ]
    );
}

#[test]
fn import_never_writes_over_or_through_kept_local_entries() {
    let mut local = Tree::default();
    local.kept.insert("link".into());
    let remote = tree(&[
        ("link", None),
        ("link/x", Some((1, 1))),
        ("ok", Some((1, 1))),
    ]);
    let plan = plan_import(&local, &remote, &BTreeMap::new(), &precise(), &mut no_hash);
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Download, "ok", Reason::New),
            (Op::Conflict, "link", Reason::Blocked),
            (Op::Conflict, "link/x", Reason::Blocked),
        ]
    );
}

#[test]
fn import_reasons() {
    let local = tree(&[
        ("a", Some((5, 100))),
        ("b", Some((5, 100))),
        ("c", Some((4, 100))),
    ]);
    let remote = tree(&[
        ("a", Some((5, 100))),
        ("b", Some((5, 500))),
        ("c", Some((5, 1))),
    ]);
    let plan = plan_import(
        &local,
        &remote,
        &BTreeMap::new(),
        &PlanOptions::default(),
        &mut no_hash,
    );
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Download, "b", Reason::MtimeNewer),
            (Op::Download, "c", Reason::SizeDiffers),
            (Op::Skip, "a", Reason::Unchanged),
        ]
    );
}

#[test]
fn deletes_only_when_asked_files_first_deepest_dirs_first() {
    let local = tree(&[("keep", Some((1, 1)))]);
    let remote = tree(&[
        ("keep", Some((1, 1))),
        ("old", None),
        ("old/sub", None),
        ("old/sub/x", Some((1, 1))),
        ("old/y", Some((1, 1))),
        ("z", Some((1, 1))),
    ]);
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &precise(), &mut no_hash);
    assert!(
        plan.actions
            .iter()
            .all(|a| a.op != Op::Delete && a.op != Op::RemoveDir)
    );
    let opts = PlanOptions {
        delete: true,
        ..size_only()
    };
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &opts, &mut no_hash);
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Skip, "keep", Reason::Unchanged),
            (Op::Delete, "old/sub/x", Reason::Extra),
            (Op::Delete, "old/y", Reason::Extra),
            (Op::Delete, "z", Reason::Extra),
            (Op::RemoveDir, "old/sub", Reason::Extra),
            (Op::RemoveDir, "old", Reason::Extra),
        ]
    );
}

#[test]
fn excluded_and_kept_entries_are_never_deleted_nor_their_dirs() {
    let mut local = tree(&[]);
    local.kept.insert("secret.tmp".into());
    let mut remote = tree(&[
        ("secret.tmp", Some((1, 1))),
        ("d", None),
        ("d/x", Some((1, 1))),
    ]);
    // The remote scan kept an excluded file inside d.
    remote.kept.insert("d/notes.tmp".into());
    let opts = PlanOptions {
        delete: true,
        ..precise()
    };
    let plan = plan_export(&local, &remote, &BTreeMap::new(), &opts, &mut no_hash);
    assert_eq!(ops(&plan), vec![(Op::Delete, "d/x", Reason::Extra)]);
}

#[test]
fn plan_prints_and_serializes() {
    let local = tree(&[("a b#.txt", Some((5, 10)))]);
    let plan = plan_export(
        &local,
        &Tree::default(),
        &BTreeMap::new(),
        &precise(),
        &mut no_hash,
    );
    let text = plan.to_string();
    assert!(text.contains("upload"), "{text}");
    assert!(text.contains("a b#.txt"));
    assert!(text.contains("(new)"));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["actions"][0]["op"], "upload");
    assert_eq!(json["actions"][0]["reason"], "new");
    assert_eq!(json["actions"][0]["size"], 5);
}

#[test]
fn state_and_server_hash_decide_without_a_journal() {
    let h = |c: &str| c.repeat(64);
    let local = tree(&[
        ("a", Some((5, 900))),
        ("b", Some((5, 900))),
        ("c", Some((5, 900))),
    ]);
    let remote = tree(&[
        ("a", Some((5, 100))),
        ("b", Some((5, 100))),
        ("c", Some((5, 100))),
    ]);
    let state = BTreeMap::from([
        (
            "a".to_string(),
            crate::state::StateRecord {
                size: 5,
                hash: h("a"),
                remote_size: 5,
                remote_mtime_ns: t(100).map(to_ns),
            },
        ),
        (
            "b".to_string(),
            crate::state::StateRecord {
                size: 5,
                hash: h("b"),
                remote_size: 5,
                remote_mtime_ns: t(50).map(to_ns),
            },
        ),
    ]);
    let proven = BTreeMap::from([("c".to_string(), true)]);
    let journal = BTreeMap::new();
    let base = Baseline {
        journal: &journal,
        state: Some(&state),
        proven: &proven,
    };
    let plan = plan_export_with(&local, &remote, &base, &precise(), &mut |p| {
        Some(if p == "a" { h("a") } else { h("x") })
    });
    assert_eq!(
        ops(&plan),
        vec![
            (Op::Upload, "b", Reason::RemoteChanged),
            (Op::Skip, "a", Reason::Unchanged),
            (Op::Skip, "c", Reason::Unchanged),
        ]
    );
    assert_eq!(
        plan.journal_updates.len(),
        2,
        "a and c are recorded for next time"
    );
}
