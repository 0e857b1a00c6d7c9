//! Where the config file is: `--config` > `SITEPORT_CONFIG` > `./siteport.toml`, then
//! `siteport.toml` in each parent directory (as git and cargo find theirs, so a command works
//! from any subdirectory of a project) > `$XDG_CONFIG_HOME/siteport/config.toml`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrorKind};

/// Variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SITEPORT_CONFIG";
/// Config file looked for in the current directory.
pub const LOCAL_CONFIG: &str = "siteport.toml";

/// Finds the config file: `flag` (`--config`) > `SITEPORT_CONFIG` > `<cwd>/siteport.toml`,
/// then `siteport.toml` in each parent of `cwd` up to the root >
/// `$XDG_CONFIG_HOME/siteport/config.toml` (XDG default `~/.config`). A file named by the flag
/// or the variable must exist; the last two are only looked for. `env` looks variables up
/// (pass `|k| std::env::var_os(k)`).
pub fn find_config(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
    cwd: &Path,
) -> Result<PathBuf, ConfigError> {
    let named = |p: PathBuf, by: &str| {
        let p = if p.is_relative() { cwd.join(p) } else { p };
        if p.is_file() {
            Ok(p)
        } else {
            Err(ConfigError::new(
                ConfigErrorKind::NotFound,
                format!("config file {} (from {by}) does not exist", p.display()),
            )
            .hint(format!("create it, or fix {by}")))
        }
    };
    if let Some(f) = flag {
        return named(f.to_owned(), "--config");
    }
    if let Some(v) = env(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return named(PathBuf::from(v), CONFIG_ENV);
    }
    if let Some(found) = cwd
        .ancestors()
        .map(|d| d.join(LOCAL_CONFIG))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    let mut tried = vec![cwd.join(LOCAL_CONFIG)];
    let xdg = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        // The XDG spec says to ignore relative values.
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(x) = xdg {
        tried.push(x.join("siteport").join("config.toml"));
    }
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigError::new(
        ConfigErrorKind::NotFound,
        format!(
            "no config file found (looked for {}, and {LOCAL_CONFIG} in every parent directory)",
            list.join(", ")
        ),
    )
    .hint(format!(
        "create ./{LOCAL_CONFIG}, or pass --config FILE, or set {CONFIG_ENV}"
    )))
}
