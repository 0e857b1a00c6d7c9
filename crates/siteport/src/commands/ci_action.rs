//! `siteport github-action`: the entrypoint of the GitHub Action (`action.yml`, a Docker
//! action). The image is distroless (no shell), so the entrypoint is siteport itself: it
//! maps the runner's `INPUT_*` variables to an `export` command, runs it as a child process
//! with `--json`, prints a summary, and appends the run's numbers to `$GITHUB_OUTPUT`.
//!
//! The password never passes through here: the workflow puts it in the step's environment
//! (`SITEPORT_CRED_<NAME>_PASSWORD: ${{ secrets.… }}`), the child reads it with the env
//! backend, and the outputs hold only counts.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::{CliError, CliResult};
use crate::exit::Failure;

/// The action's inputs (`action.yml`), in the order the command line takes them.
pub const INPUTS: [&str; 6] = ["site", "config", "dry-run", "verify", "delete", "args"];

/// An input as the runner passes it: `INPUT_<NAME>` upper-cased (hyphens kept; the spelling
/// with `_` is accepted too). Empty means not given.
fn input(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    [
        format!("INPUT_{upper}"),
        format!("INPUT_{}", upper.replace('-', "_")),
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok())
    .map(|v| v.trim().to_owned())
    .filter(|v| !v.is_empty())
}

fn flag(name: &str) -> CliResult<bool> {
    match input(name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(CliError::usage(format!(
            "action input `{name}` is `{other}`: use true or false"
        ))),
    }
}

/// The `siteport` arguments the inputs ask for.
pub fn command_line() -> CliResult<Vec<String>> {
    let sites = input("site").ok_or_else(|| {
        CliError::usage("action input `site` is empty")
            .with_hint("set `with: site: NAME` (one or more site names of the config)")
    })?;
    let mut args = vec!["--json".to_owned()];
    if let Some(c) = input("config") {
        args.extend(["--config".to_owned(), c]);
    }
    args.push("export".to_owned());
    args.extend(
        sites
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    for (name, flag_name) in [
        ("dry-run", "--dry-run"),
        ("verify", "--verify"),
        ("delete", "--delete"),
    ] {
        if flag(name)? {
            args.push(flag_name.to_owned());
        }
    }
    // Extra flags, split on whitespace (no shell quoting: flags and values have no spaces).
    if let Some(extra) = input("args") {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    Ok(args)
}

/// What the run did, summed over its sites: `(files sent, bytes sent, files deleted)`.
/// A dry run reports what it would do.
pub fn totals(json: &Value) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    let sites = json["sites"].as_array().cloned().unwrap_or_default();
    for s in &sites {
        if let Some(r) = s.get("report") {
            t.0 += r["counts"]["uploaded"].as_u64().unwrap_or(0);
            t.1 += r["bytes"].as_u64().unwrap_or(0);
            t.2 += r["counts"]["deleted"].as_u64().unwrap_or(0);
        } else if let Some(actions) = s["plan"]["actions"].as_array() {
            for a in actions {
                match a["op"].as_str() {
                    Some("upload") => {
                        t.0 += 1;
                        t.1 += a["size"].as_u64().unwrap_or(0);
                    }
                    Some("delete") => t.2 += 1,
                    _ => {}
                }
            }
        }
    }
    t
}

/// Runs the action: the export as a child process, then the outputs. Exits with the
/// export's own exit code.
pub fn run() -> CliResult {
    let args = command_line()?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::internal(format!("cannot find the siteport binary: {e}")))?;
    let out = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| CliError::internal(format!("cannot run siteport export: {e}")))?;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let (files, bytes, deleted) = totals(&json);
    let code = out
        .status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(crate::exit::INTERNAL);
    let dry = args.iter().any(|a| a == "--dry-run");
    crate::output::print_line(&format!(
        "siteport: {files} files {} ({}), {deleted} deleted; exit code {code}",
        if dry { "to send" } else { "sent" },
        crate::progress::human_size(bytes)
    ))?;
    write_outputs(&[
        ("files-sent", files.to_string()),
        ("bytes-sent", bytes.to_string()),
        ("files-deleted", deleted.to_string()),
        ("exit-code", code.to_string()),
    ])?;
    if code == 0 {
        return Ok(());
    }
    // The export has printed its error; the action fails with the same code.
    let mut e = CliError::new(
        Failure::Internal,
        "export_failed",
        format!("siteport export failed (exit code {code})"),
    );
    e.code = code;
    Err(e)
}

/// Appends `name=value` lines to the file `$GITHUB_OUTPUT` names (nothing outside a runner).
fn write_outputs(pairs: &[(&str, String)]) -> CliResult {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| CliError::local_write(format!("cannot open $GITHUB_OUTPUT: {e}")))?;
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    f.write_all(text.as_bytes())
        .map_err(|e| CliError::local_write(format!("cannot write $GITHUB_OUTPUT: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn totals_sum_reports_and_dry_run_plans() {
        let v = json!({"sites": [
            {"site": "a", "report": {"counts": {"uploaded": 2, "deleted": 1}, "bytes": 30}},
            {"site": "b", "plan": {"actions": [
                {"op": "upload", "size": 5}, {"op": "skip", "size": 9}, {"op": "delete", "size": 0}
            ]}},
            {"site": "c", "error": {"kind": "login"}}
        ]});
        assert_eq!(totals(&v), (3, 35, 2));
        assert_eq!(totals(&Value::Null), (0, 0, 0));
    }
}
