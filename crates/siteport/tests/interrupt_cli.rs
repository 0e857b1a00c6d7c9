//! Interrupted runs and the journal's place, through the real binary against vsftpd over
//! explicit FTPS: Ctrl-C and SIGTERM in the middle of an upload (slowed with `--bwlimit`, so
//! the signal lands while the file is on its way) exit 130 and 143 with no temporary file
//! left on the server, the lock freed, and a next run with nothing stale to report; stale
//! temporary files of siteport's own naming planted on the server (and locally, for import)
//! are shown by `plan` and removed by the next run while look-alike user files stay; two
//! configs with a site named `blog` run at once with a journal each; a journal kept under the
//! old name-keyed rule is moved, and lock files of dead runs are swept.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, assert_code, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

fn cred_env(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

/// A config in `dir` with site `name` (FTPS, `ca_file`) from `public` to `remote`.
fn write_config(dir: &Path, server: &FtpServer, name: &str, remote: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"explicit\"\nca_file = \"{}\"\ncredential = \"web\"\nlocal = \"public\"\n\
         remote = \"{remote}\"\n{extra}\n",
        server.port,
        server.ca_path().unwrap().display()
    );
    std::fs::write(dir.join("siteport.toml"), text).unwrap();
}

/// Starts siteport in `dir` with the sandbox's environment and journal directory `state`.
fn spawn(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(String, String)]) -> Child {
    Command::new(common::bin())
        .env_clear()
        .envs(sb.envs())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    spawn(sb, dir, args, env).wait_with_output().unwrap()
}

/// Every file under `root` whose name ends with `suffix`, relative.
fn find(root: &Path, suffix: &str) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, suffix, out);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, suffix, &mut out);
    out.sort();
    out
}

/// Bytes that do not compress (TLS does not compress anyway; this keeps sizes honest).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_signal_mid_upload_removes_the_partial_file_and_the_next_run_finds_none() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let work = sb.workdir();
    write_config(&work, &server, "web", "/htdocs", "max_connections = 1");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    std::fs::write(work.join("public/index.html"), "<p>hi</p>\n").unwrap();
    // The first run puts the small file and the state dir in place.
    assert_code(&run(&sb, &work, &["export", "web"], &env), 0);

    for (sig, code, said) in [
        ("INT", 130, "stopped by Ctrl-C"),
        ("TERM", 143, "stopped by SIGTERM"),
    ] {
        let big = format!("big-{sig}.bin");
        std::fs::write(work.join("public").join(&big), noise(6 << 20)).unwrap();
        // 6 MiB at 1 MiB/s: the upload is under way for seconds when the signal comes.
        let child = spawn(&sb, &work, &["export", "web", "--bwlimit", "1M"], &env);
        let t = Instant::now();
        while find(&htdocs, ".siteport-tmp").is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no temporary file appeared on the server"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_code(&o, code);
        let err = stderr(&o);
        assert!(err.contains(said), "{err}");
        // One connection: one file in flight (the earlier big file, if it is still unsent).
        assert!(
            err.contains("interrupted  big-") && err.contains("partial upload was removed"),
            "the interrupted file is not named: {err}"
        );
        assert!(err.contains("done: 0 of "), "{err}");
        assert!(err.contains("1 temporary file(s) removed"), "{err}");
        assert_eq!(
            find(server.root(), ".siteport-tmp"),
            Vec::<PathBuf>::new(),
            "a temporary file was left on the server"
        );
        assert!(
            !htdocs.join(&big).exists(),
            "a partial file under its final name"
        );
        assert!(
            !htdocs.join(".siteport/lock").exists(),
            "the site lock was not released"
        );
        assert!(
            find(&sb.path("state"), ".lock").is_empty(),
            "a journal lock file was left"
        );
    }

    // The next run has nothing stale to report or remove, and finishes the job.
    let plan = run(&sb, &work, &["plan", "web"], &env);
    assert_code(&plan, 0);
    let out = stdout(&plan);
    assert!(
        !out.contains("siteport-tmp") && !out.contains("remove "),
        "{out}"
    );
    let o = run(&sb, &work, &["export", "web"], &env);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("stale"), "{}", stdout(&o));
    for big in ["big-INT.bin", "big-TERM.bin"] {
        assert_eq!(
            std::fs::read(htdocs.join(big)).unwrap(),
            std::fs::read(work.join("public").join(big)).unwrap()
        );
    }
}

#[test]
fn stale_temp_files_are_planned_and_removed_and_look_alikes_stay() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let work = sb.workdir();
    // A `.*` exclude must not hide a dead run's leftovers.
    write_config(&work, &server, "web", "/htdocs", "exclude = [\".*\"]");
    let env = cred_env(&server);
    std::fs::create_dir_all(work.join("public/sub")).unwrap();
    std::fs::write(work.join("public/index.html"), "<p>hi</p>\n").unwrap();
    std::fs::write(work.join("public/sub/page.html"), "<p>page</p>\n").unwrap();
    assert_code(&run(&sb, &work, &["export", "web"], &env), 0);

    let htdocs = server.root().join("htdocs");
    let stale = [
        ".index.html.0123abcd.siteport-tmp",
        "sub/.page.html.deadbeef.siteport-tmp",
        "sub/.siteport-Ab12cd.part",
    ];
    let look_alikes = [
        ".index.html.siteport-tmp",
        "index.html.0123abcd.siteport-tmp",
        "sub/.page.html.deadbeef.siteport-tmp.bak",
        "sub/.siteport-draft.part",
    ];
    for p in stale.iter().chain(&look_alikes) {
        std::fs::write(htdocs.join(p), "leftover").unwrap();
    }

    let plan = run(&sb, &work, &["plan", "web"], &env);
    assert_code(&plan, 0);
    let out = stdout(&plan);
    for p in stale {
        assert!(
            out.lines()
                .any(|l| l.starts_with("remove") && l.contains(p)),
            "{p} not shown: {out}"
        );
    }
    for p in look_alikes {
        // A plan line is `ACTION  SIZE  PATH  (REASON)`: compare whole paths.
        assert!(
            !out.lines().any(|l| l.split("  ").any(|f| f.trim() == p)),
            "{p} planned: {out}"
        );
    }
    for p in stale {
        assert!(htdocs.join(p).exists(), "plan removed {p}");
    }

    let o = run(&sb, &work, &["export", "web"], &env);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("3 stale temporary file(s) removed"),
        "{}",
        stdout(&o)
    );
    for p in stale {
        assert!(!htdocs.join(p).exists(), "{p} was not removed");
    }
    for p in look_alikes {
        assert!(htdocs.join(p).exists(), "the user's {p} was removed");
    }
    let again = stdout(&run(&sb, &work, &["plan", "web"], &env));
    assert!(!again.contains("remove "), "{again}");

    // Import: a dead download's `.part` file in the local tree goes, a look-alike stays.
    let local = work.join("public/sub");
    std::fs::write(local.join(".siteport-Zz9yX8.part"), "half").unwrap();
    std::fs::write(local.join(".siteport-notes.part.txt"), "mine").unwrap();
    let o = run(&sb, &work, &["import", "web"], &env);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("1 stale temporary file(s) removed"),
        "{}",
        stdout(&o)
    );
    assert!(!local.join(".siteport-Zz9yX8.part").exists());
    assert!(local.join(".siteport-notes.part.txt").exists());
}

#[test]
fn two_configs_with_a_site_named_blog_run_at_once_with_a_journal_each() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let env = cred_env(&server);
    let (p1, p2) = (sb.path("project1"), sb.path("project2"));
    write_config(&p1, &server, "blog", "/one", "");
    write_config(&p2, &server, "blog", "/two", "");
    std::fs::write(p1.join("public/a.bin"), noise(1 << 20)).unwrap();
    std::fs::write(p2.join("public/b.bin"), noise(1 << 20)).unwrap();
    // A killed run's journal lock file: swept by the next run.
    std::fs::create_dir_all(sb.path("state/journal")).unwrap();
    std::fs::write(sb.path("state/journal/dead.json.lock"), "").unwrap();

    // Each run takes about two seconds: they overlap.
    let args = ["export", "blog", "--bwlimit", "512K"];
    let first = spawn(&sb, &p1, &args, &env);
    let second = spawn(&sb, &p2, &args, &env);
    let (o1, o2) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_code(&o1, 0);
    assert_code(&o2, 0);
    assert!(server.root().join("one/a.bin").exists());
    assert!(server.root().join("two/b.bin").exists());
    let journals = find(&sb.path("state/journal"), ".json");
    assert_eq!(journals.len(), 2, "{journals:?}");
    assert_ne!(journals[0], journals[1]);
    assert!(
        find(&sb.path("state"), ".lock").is_empty(),
        "lock files were left: {:?}",
        find(&sb.path("state"), ".lock")
    );
}

#[test]
fn a_journal_under_the_old_site_name_is_moved_not_dropped() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let env = cred_env(&server);
    let work = sb.workdir();
    write_config(&work, &server, "blog", "/blog", "");
    std::fs::write(work.join("public/index.html"), "<p>hi</p>\n").unwrap();
    assert_code(&run(&sb, &work, &["export", "blog"], &env), 0);
    let jdir = sb.path("state/journal");
    let journals = find(&jdir, ".json");
    assert_eq!(journals.len(), 1, "{journals:?}");
    let keyed = jdir.join(&journals[0]);
    assert!(
        keyed
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("127.0.0.1-"),
        "{}",
        keyed.display()
    );
    // As an earlier siteport left it: named after the site.
    let legacy = jdir.join("blog.json");
    std::fs::rename(&keyed, &legacy).unwrap();
    let records = std::fs::read(&legacy).unwrap();

    let st = run(&sb, &work, &["status", "blog"], &env);
    assert_code(&st, 0);
    assert!(
        stdout(&st).contains("blog.json"),
        "status does not find the old journal: {}",
        stdout(&st)
    );
    assert_code(&run(&sb, &work, &["export", "blog"], &env), 0);
    assert!(!legacy.exists(), "the old journal was not moved");
    assert_eq!(std::fs::read(&keyed).unwrap(), records);
}

#[test]
fn ctrl_c_mid_download_leaves_no_part_file_locally() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let work = sb.workdir();
    write_config(&work, &server, "web", "/htdocs", "max_connections = 1");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    std::fs::create_dir_all(&htdocs).unwrap();
    std::fs::write(htdocs.join("big.bin"), noise(6 << 20)).unwrap();
    // The FTP user takes the site lock in there: the directory must be theirs.
    let owner = std::fs::metadata(server.root()).unwrap();
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::chown(&htdocs, Some(owner.uid()), Some(owner.gid())).unwrap();
    let public = work.join("public");

    let child = spawn(&sb, &work, &["import", "web", "--bwlimit", "1M"], &env);
    let t = Instant::now();
    while find(&public, ".part").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no download temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 130);
    let err = stderr(&o);
    assert!(err.contains("interrupted  big.bin  (not fetched"), "{err}");
    assert!(err.contains("done: 0 of 1 downloads"), "{err}");
    assert_eq!(find(&public, ".part"), Vec::<PathBuf>::new());
    assert!(
        !public.join("big.bin").exists(),
        "a partial file under its final name"
    );
    assert!(!htdocs.join(".siteport/lock").exists(), "the lock was kept");
}
