//! Issue 18, defect 1, through the real binary: a site file swapped for a link to a private
//! file outside the site while the export runs is not published; the run says which file
//! failed and exits 5. (The engine-level tests, with every kind of swap, over one and four
//! connections and against vsftpd: siteport-sync's tests/local_swap.rs.)
//!
//! The link is only created by the test, never written through (the tests run as root).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, bin};
use siteport_testsupport::{FtpServer, ServerKind};

const MARK: &[u8] = b"CANARY-0600-do-not-publish;";

/// Whether a temporary upload of `name` is under way in `dir` (`.NAME.TAG.siteport-tmp`).
fn uploading(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!(".{name}.")) && n.ends_with(".siteport-tmp")
        })
    })
}

#[test]
fn file_swapped_for_a_link_during_export_is_not_published_and_exits_5() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let config = format!(
        "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{}\"\n\
         password = \"${{FTP_PW}}\"\nlocal = \"public\"\nremote = \"/\"\nmax_connections = 1\n",
        server.port, server.user
    );
    std::fs::write(sb.workdir().join("siteport.toml"), config).unwrap();
    let public = sb.workdir().join("public");
    std::fs::create_dir_all(&public).unwrap();
    // Sent first and slowly (--bwlimit): the swap happens while it travels, after the scan.
    std::fs::write(public.join("a.bin"), vec![b'a'; 512 * 1024]).unwrap();
    std::fs::write(public.join("z.html"), b"<p>the page</p>").unwrap();
    let canary = sb.path("private-canary");
    std::fs::write(&canary, MARK.repeat(40)).unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();

    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let child = Command::new(bin())
        .env_clear()
        .envs(sb.envs())
        .env("FTP_PW", &pw)
        .current_dir(sb.workdir())
        .args(["--json", "export", "web", "--bwlimit", "128K"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !uploading(server.root(), "a.bin") {
        assert!(Instant::now() < deadline, "a.bin never started uploading");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(public.join("z.html")).unwrap();
    std::os::unix::fs::symlink(&canary, public.join("z.html")).unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );

    assert_eq!(o.status.code(), Some(5), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        !server.root().join("z.html").exists(),
        "the swapped name reached the server"
    );
    for e in std::fs::read_dir(server.root()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let data = std::fs::read(&p).unwrap();
            assert!(
                !data.windows(MARK.len()).any(|w| w == MARK),
                "canary published as {}",
                p.display()
            );
        }
    }
    assert_eq!(
        std::fs::read(server.root().join("a.bin")).unwrap().len(),
        512 * 1024
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let report = &v["sites"][0]["report"];
    assert_eq!(report["counts"]["failed"], 1, "{v}");
    assert!(
        out.contains("z.html") && out.contains("symbolic link"),
        "the failure names the file and why: {out}"
    );
    assert!(public.join("z.html").is_symlink());
}
