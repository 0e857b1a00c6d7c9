//! The deploy state's reading cost, for `bench/run --scenario state100k` (issue 17: the state
//! of 100,000 files read and parsed in at most 300 ms and 60 MiB of extra peak RSS).
//!
//!   state_parse gen N FILE   writes a document of N files as an export would (paths in 100
//!                            dirs, BLAKE3 hashes, listed sizes and times)
//!   state_parse parse FILE   reads and validates it; prints `files ms` on stdout
//!
//! Peak RSS is measured around the process (`/usr/bin/time`), against a one-file document.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use siteport_sync::{DeployInfo, DeployState, StateRecord};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", n, file] => {
            let n: usize = n.parse().map_err(|e| format!("N: {e}"))?;
            generate(n, Path::new(file))
        }
        ["parse", file] => {
            let t = Instant::now();
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let state = DeployState::parse(&bytes)?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            println!("{} {ms:.1}", state.files.len());
            Ok(())
        }
        _ => Err("usage: state_parse gen N FILE | state_parse parse FILE".into()),
    }
}

fn generate(n: usize, file: &Path) -> Result<(), String> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let path = format!("section-{:03}/page-{i:06}.html", i % 100);
        let hash = blake3::hash(path.as_bytes()).to_hex().to_string();
        let size = 1024 + (i as u64 % 4096);
        files.insert(
            path,
            StateRecord {
                size,
                hash,
                remote_size: size,
                remote_mtime_ns: Some(1_765_000_000_000_000_000 + i as i64),
            },
        );
    }
    let mut deploy = DeployInfo::new(Path::new("."));
    deploy.files = n as u64;
    deploy.complete = true;
    let state = DeployState { deploy, files };
    std::fs::write(file, state.to_bytes()).map_err(|e| format!("{}: {e}", file.display()))
}
