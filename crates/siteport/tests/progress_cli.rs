//! Progress that moves while a file is under way, against a vsftpd held to about 4 MB/s
//! (`local_max_rate`): on a real pseudo-terminal the bytes bar advances at least once a
//! second during one 20 MiB file, export and import; on a non-terminal `--stats 1s` prints
//! a line every second during the transfer and `--stats 0` none.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

/// The server's rate, bytes per second each way: 20 MiB take about 5 s.
const RATE: u64 = 4_000_000;
const MIB: usize = 1024 * 1024;

fn cred_env(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

/// A config in `dir` with site `acme` (FTPS, `ca_file`) from `public` to `/site`, holding one
/// file `big.bin` of `size` bytes.
fn write_site(dir: &Path, server: &FtpServer, size: usize) {
    let public = dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    // Not all one byte: nothing on the way gets to compress it.
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4093) as u8).collect();
    std::fs::write(public.join("big.bin"), data).unwrap();
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"acme\"\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"explicit\"\nca_file = \"{}\"\ncredential = \"web\"\nlocal = \"public\"\n\
         remote = \"/site\"\n",
        server.port,
        server.ca_path().unwrap().display()
    );
    std::fs::write(dir.join("siteport.toml"), text).unwrap();
}

/// `siteport ARGS` on a fresh 120-column pty, in `dir`.
fn spawn_pty(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(String, String)]) -> PtySession {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("stty cols 120 rows 40 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args)
        .env_clear()
        .envs(sb.envs())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        // Without TERM (or with TERM=dumb) there are no bars, only stats lines.
        .env("TERM", "xterm")
        .current_dir(dir);
    spawn_command(c, Some(60_000)).unwrap()
}

/// `4.0 MiB` (or indicatif's `4.00 MiB`) in bytes.
fn parse_size(s: &str) -> f64 {
    let (n, unit) = s.trim().split_once(' ').unwrap();
    let n: f64 = n.parse().unwrap();
    n * match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB as f64,
        other => panic!("unit {other:?}"),
    }
}

/// Reads the bars' redraws until the run ends: when each new byte count of the 20 MiB
/// bytes bar was first seen, and everything read.
fn watch_bytes_bar(p: &mut PtySession) -> (Vec<(Instant, f64)>, String) {
    let mut seen = Vec::new();
    let mut all = String::new();
    // `bytes [####----] 4.0 MiB/20.0 MiB …`; indicatif's own `{bytes}` writes `20.00 MiB`,
    // so the display before counting bytes as they went reads too (and fails on timing).
    let re = r"bytes \[[^\]]*\] [0-9.]+ (B|KiB|MiB)/20\.00? MiB";
    while let Ok((before, matched)) = p.exp_regex(re) {
        let now = Instant::now();
        all.push_str(&before);
        all.push_str(&matched);
        let shown = matched.split("] ").nth(1).unwrap();
        let value = parse_size(shown.split('/').next().unwrap());
        if seen.last().is_none_or(|&(_, v)| v != value) {
            seen.push((now, value));
        }
    }
    if let Ok(rest) = p.exp_eof() {
        all.push_str(&rest);
    }
    (seen, all)
}

/// The bar moved at least once a second from its first draw until the file was done, in
/// steps (not one jump at the end).
fn assert_moves_every_second(what: &str, seen: &[(Instant, f64)], all: &str) {
    let full = 20.0 * MIB as f64;
    let end = seen
        .iter()
        .position(|&(_, v)| v >= full)
        .unwrap_or_else(|| panic!("{what}: the bar never reached 20 MiB: {seen:?}\n{all}"));
    let during = &seen[..=end];
    let took = during[end].0 - during[0].0;
    assert!(
        took >= Duration::from_secs(2),
        "{what}: the server's rate limit did not hold ({took:?}), so nothing was shown: {all}"
    );
    let values: Vec<f64> = during.iter().map(|&(_, v)| v / MIB as f64).collect();
    let at: Vec<u128> = during
        .iter()
        .map(|&(t, _)| (t - during[0].0).as_millis())
        .collect();
    eprintln!("{what}: MiB shown {values:?} at ms {at:?}");
    for w in during.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap <= Duration::from_millis(1000),
            "{what}: the bytes bar stood still for {gap:?} during the transfer (MiB shown: {values:?})"
        );
    }
    assert!(
        values.len() >= 4,
        "{what}: the bar jumped instead of moving: {values:?}"
    );
}

fn exit_code(p: &PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("siteport did not exit normally: {other:?}"),
    }
}

#[test]
fn bytes_bar_moves_every_second_during_one_slow_file_both_ways() {
    let server = FtpServer::start_with_rate(ServerKind::Vsftpd, true, Some(RATE));
    let sb = Sandbox::new();
    let dir = sb.workdir();
    write_site(&dir, &server, 20 * MIB);
    let env = cred_env(&server);

    let mut p = spawn_pty(&sb, &dir, &["export", "acme"], &env);
    let (seen, all) = watch_bytes_bar(&mut p);
    assert_eq!(exit_code(&p), 0, "{all}");
    assert_moves_every_second("export", &seen, &all);
    // The summary says it in the same units.
    assert!(all.contains("1 uploaded (20.0 MiB)"), "{all}");

    let back = dir.join("back");
    let mut p = spawn_pty(
        &sb,
        &dir,
        &["import", "acme", "--to", back.to_str().unwrap()],
        &env,
    );
    let (seen, all) = watch_bytes_bar(&mut p);
    assert_eq!(exit_code(&p), 0, "{all}");
    assert_moves_every_second("import", &seen, &all);
    assert!(all.contains("1 downloaded (20.0 MiB)"), "{all}");
    assert_eq!(
        std::fs::read(back.join("big.bin")).unwrap(),
        std::fs::read(dir.join("public/big.bin")).unwrap()
    );
}

/// Runs siteport with stderr a pipe; returns each stderr line with when it came, the time
/// the process ended, and its exit code.
fn run_timed(
    sb: &Sandbox,
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> (Vec<(Instant, String)>, Instant, i32) {
    let mut child = Command::new(bin())
        .env_clear()
        .envs(sb.envs())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<(Instant, String)> = err.lines().map(|l| (Instant::now(), l.unwrap())).collect();
    let status = child.wait().unwrap();
    (lines, Instant::now(), status.code().unwrap_or(-1))
}

#[test]
fn stats_lines_on_a_non_terminal_every_interval_and_none_with_zero() {
    let server = FtpServer::start_with_rate(ServerKind::Vsftpd, true, Some(RATE));
    let sb = Sandbox::new();
    let dir = sb.workdir();
    write_site(&dir, &server, 12 * MIB); // about 3 s each way
    let env = cred_env(&server);
    let is_stats = |l: &str| l.starts_with("acme: ") && l.contains(" actions, ");

    let (lines, ended, code) = run_timed(&sb, &dir, &["export", "acme", "--stats", "1s"], &env);
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(code, 0, "{text:#?}");
    let stats: Vec<&(Instant, String)> = lines.iter().filter(|(_, l)| is_stats(l)).collect();
    assert!(stats.len() >= 2, "{text:#?}");
    // Printed while the file was on its way, not at the end, and with the bytes so far.
    assert!(
        ended - stats[0].0 >= Duration::from_millis(1000),
        "the first stats line came at the end: {text:#?}"
    );
    let first = &stats[0].1;
    assert!(first.contains("0/1 actions, "), "{first}");
    assert!(first.contains("/12.0 MiB ("), "{first}");
    assert!(
        first.contains("/s, ") && first.ends_with(" elapsed"),
        "{first}"
    );
    let moved: Vec<f64> = stats
        .iter()
        .map(|(_, l)| {
            parse_size(
                l.split(" actions, ")
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap(),
            )
        })
        .collect();
    assert!(
        moved.windows(2).any(|w| w[1] > w[0]) && moved[0] > 0.0,
        "the bytes did not move between stats lines: {text:#?}"
    );

    // `--stats 0`: no stats lines, though the import takes as long.
    let back = dir.join("back");
    let (lines, _, code) = run_timed(
        &sb,
        &dir,
        &[
            "import",
            "acme",
            "--to",
            back.to_str().unwrap(),
            "--stats",
            "0",
        ],
        &env,
    );
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(code, 0, "{text:#?}");
    assert!(!text.iter().any(|l| is_stats(l)), "{text:#?}");
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap().len(), 12 * MIB);
}
