//! Shared test fixtures: a fresh HOME and XDG dirs per test, and the siteport binary run in them.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// Path to the built binary.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_siteport"))
}

/// A sandbox: its own HOME, XDG_CONFIG_HOME, XDG_DATA_HOME and working directory, and an
/// environment cleared of everything else (so a developer's SITEPORT_* never leaks in).
pub struct Sandbox {
    pub root: TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for d in ["home", "config", "data", "work"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        Self { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }
    pub fn workdir(&self) -> PathBuf {
        self.path("work")
    }
    /// The file backend's default store.
    pub fn store(&self) -> PathBuf {
        self.path("data/siteport/credentials.age")
    }
    /// The file backend's default identity.
    pub fn identity(&self) -> PathBuf {
        self.path("config/siteport/identity.txt")
    }

    /// The environment the binary runs with.
    pub fn envs(&self) -> Vec<(String, String)> {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), s(self.home())),
            ("XDG_CONFIG_HOME".into(), s(self.path("config"))),
            ("XDG_DATA_HOME".into(), s(self.path("data"))),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }

    /// `siteport ARGS` in the sandbox, stdin empty.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .envs(self.envs())
            .current_dir(self.workdir())
            .args(args)
            .write_stdin("");
        c
    }

    /// Runs and returns the output, whatever the status.
    pub fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(args);
        c.write_stdin(stdin.to_owned());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses stdout as one JSON document.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// Asserts the exit code, showing both streams on failure.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// The permission bits of a path.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The journal files (`*.json`) in a journal directory, by name, sorted; none when it is
/// missing. Journals are named after their remote (`<host>-<hash>.json`), so tests that ask
/// "was a journal written" look for any.
pub fn journals(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
