//! `--parallel-sites` (issue 21 item 4): `export --all` runs several sites at once, a site
//! whose server is down never stops the others, the results and the exit code follow the
//! config's order. Against a vsftpd held to 1 MB/s a session (`local_max_rate`), so that
//! three sites of one 1.5 MB file each take about 4.5 s one after another and about 1.5 s
//! together.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

const RATE: u64 = 1_000_000;
const SIZE: usize = 1_500_000;
const SITES: [&str; 3] = ["alpha", "beta", "gamma"];

/// A config with the three sites (each its own local dir and remote dir on `server`) and,
/// second in the file, a site `down` on a port nothing listens on.
fn write_config(sb: &Sandbox, server: &FtpServer, closed_port: u16, tag: &str) {
    let mut text = String::from("[credentials]\nbackend = \"env\"\n");
    let site = |name: &str, port: u16| {
        format!(
            "\n[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             credential = \"web\"\nlocal = \"{name}\"\nremote = \"/{tag}-{name}\"\n"
        )
    };
    text += &site(SITES[0], server.port);
    text += &site("down", closed_port);
    for name in &SITES[1..] {
        text += &site(name, server.port);
    }
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    for (i, name) in SITES.iter().chain(["down"].iter()).enumerate() {
        let dir = sb.workdir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..SIZE).map(|b| (b * (i + 3) + b / 977) as u8).collect();
        std::fs::write(dir.join("big.bin"), data).unwrap();
    }
}

fn env(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

fn export_all(
    sb: &Sandbox,
    server: &FtpServer,
    extra: &[&str],
) -> (std::process::Output, Duration) {
    let mut args = vec!["--json", "export", "--all"];
    args.extend(extra);
    let env = env(server);
    let started = Instant::now();
    let o = sb
        .cmd(&args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        .output()
        .unwrap();
    (o, started.elapsed())
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).ok() == std::fs::read(b).ok()
}

#[test]
fn sites_run_at_once_and_a_site_that_is_down_stops_none_of_the_others() {
    let server = FtpServer::start_with_rate(ServerKind::Vsftpd, false, Some(RATE));
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sb = Sandbox::new();

    let mut times = Vec::new();
    for (tag, extra) in [("one", &["--parallel-sites", "1"][..]), ("all", &[][..])] {
        write_config(&sb, &server, closed_port, tag);
        let (o, took) = export_all(&sb, &server, extra);
        times.push(took);
        // The down site's failure decides the exit code: connection refused, exit 6.
        assert_code(&o, 6);
        let doc = json(&o);
        let sites = doc["sites"].as_array().expect("a sites array");
        let names: Vec<&str> = sites.iter().filter_map(|s| s["site"].as_str()).collect();
        assert_eq!(
            names,
            ["alpha", "down", "beta", "gamma"],
            "config order: {doc}"
        );
        assert_eq!(sites[1]["error"]["exit_code"], 6, "{doc}");
        for (i, name) in SITES.iter().enumerate() {
            let site = &sites[if i == 0 { 0 } else { i + 1 }];
            assert!(site.get("error").is_none(), "{name} failed: {site}");
            let remote = server.root().join(format!("{tag}-{name}")).join("big.bin");
            let local = sb.workdir().join(name).join("big.bin");
            assert!(same_file(&remote, &local), "{name} not exported ({tag})");
        }
        assert!(
            stderr(&o).contains("1 of 4 sites failed: down"),
            "{}",
            stderr(&o)
        );
    }
    // One after another: at least the three transfers end to end (4.5 s at the server's
    // rate). At once: about one transfer; well under two thirds of the sequential run.
    let (one, all) = (times[0], times[1]);
    assert!(
        one >= Duration::from_secs_f64(3.0 * SIZE as f64 / RATE as f64 * 0.9),
        "--parallel-sites 1 took {one:?}: not one site after another"
    );
    assert!(
        all.as_secs_f64() < one.as_secs_f64() * 0.66,
        "--parallel-sites 4 took {all:?}, one at a time {one:?}"
    );

    // Every site up: one line for the whole run after each site's own summary, exit 0.
    let text = std::fs::read_to_string(sb.workdir().join("siteport.toml")).unwrap();
    let without_down = text.replace(
        &format!("port = {closed_port}"),
        &format!("port = {}", server.port),
    );
    std::fs::write(sb.workdir().join("siteport.toml"), without_down).unwrap();
    let env = env(&server);
    let o = sb
        .cmd(&["export", "--all"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    let summaries = out.lines().filter(|l| l.starts_with("export ")).count();
    assert_eq!(summaries, 4, "one summary a site:\n{out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("export: all 4 sites done in")),
        "{out}"
    );
}
