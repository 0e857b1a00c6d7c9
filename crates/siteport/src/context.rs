//! What every command needs from the global flags: the output mode, and the credential backend
//! chosen by `--credential-backend` > `SITEPORT_CREDENTIAL_BACKEND` > config > `file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use siteport_creds::{BackendSettings, BackendSpec, CredentialBackend, Prompter, open_backend};

use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::prompt::TerminalPrompter;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SITEPORT_CONFIG";
/// Environment variable selecting the backend (read here so that the CLI controls it).
pub const BACKEND_ENV: &str = "SITEPORT_CREDENTIAL_BACKEND";

/// Global state for one command run.
#[derive(Debug, Clone)]
pub struct Context {
    /// Human or JSON output.
    pub output: Output,
    /// `--credential-backend`, unparsed (parsing is part of the precedence rules).
    pub backend_flag: Option<String>,
    /// `--config`.
    pub config_path: Option<PathBuf>,
}

impl Context {
    /// The backend spec and settings, after applying the precedence rules.
    pub fn credentials(&self) -> CliResult<(BackendSpec, BackendSettings)> {
        let (config_spec, settings) = match self.find_config()? {
            Some(path) => load_credentials_table(&path)?,
            None => (None, BackendSettings::default()),
        };
        let env = std::env::var(BACKEND_ENV).ok();
        let spec = BackendSpec::select(
            self.backend_flag.as_deref(),
            env.as_deref(),
            config_spec.as_ref(),
        )
        // A wrong backend name is a usage/config error (exit 2), not a store failure.
        .map_err(|e| CliError::usage(e.to_string()).with_hint(backend_hint()))?;
        tracing::debug!(backend = %spec, "credential backend selected");
        Ok((spec, settings))
    }

    /// Opens the selected backend (or chain).
    pub fn backend(&self) -> CliResult<Box<dyn CredentialBackend>> {
        let (spec, settings) = self.credentials()?;
        Ok(open_backend(&spec, &settings, self.prompter())?)
    }

    /// Whether the selection is a chain of several backends.
    pub fn is_chain(&self) -> CliResult<bool> {
        Ok(self.credentials()?.0.kinds().len() > 1)
    }

    /// The prompter handed to backends (passphrase prompts).
    pub fn prompter(&self) -> Arc<dyn Prompter> {
        Arc::new(TerminalPrompter)
    }

    /// `--config`, then `SITEPORT_CONFIG` (both must exist), then `./siteport.toml`, then
    /// `$XDG_CONFIG_HOME/siteport/config.toml`, else no config.
    fn find_config(&self) -> CliResult<Option<PathBuf>> {
        let named = self
            .config_path
            .clone()
            .map(|p| (p, "--config"))
            .or_else(|| {
                std::env::var_os(CONFIG_ENV)
                    .filter(|v| !v.is_empty())
                    .map(|v| (PathBuf::from(v), CONFIG_ENV))
            });
        if let Some((path, source)) = named {
            if !path.is_file() {
                return Err(CliError::usage(format!(
                    "config file {} (from {source}) does not exist or is not a file",
                    path.display()
                ))
                .with_hint("check the path, or omit it to use ./siteport.toml"));
            }
            return Ok(Some(path));
        }
        let local = PathBuf::from("siteport.toml");
        if local.is_file() {
            return Ok(Some(local));
        }
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        Ok(xdg
            .map(|d| d.join("siteport").join("config.toml"))
            .filter(|p| p.is_file()))
    }
}

fn backend_hint() -> String {
    "use one of file, env, dir (or a chain such as `env,file`) in --credential-backend, \
     SITEPORT_CREDENTIAL_BACKEND or [credentials] backend"
        .into()
}

// SEAM: until `config::Config` (the full config loader) lands, only the `[credentials]` table
// is read, here. Replace this function with `config::Config::load(..).credentials`.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    credentials: Option<CredentialsTable>,
}

#[derive(Debug, Default, Deserialize)]
struct CredentialsTable {
    backend: Option<BackendSpec>,
    #[serde(flatten)]
    settings: BackendSettings,
}

fn load_credentials_table(path: &Path) -> CliResult<(Option<BackendSpec>, BackendSettings)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read config file {}: {e}", path.display())))?;
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| {
        // toml's own Display quotes the offending source line, which could be a hard-coded
        // password: report only the message and the position.
        let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        CliError::usage(format!(
            "{}:{line}:{col}: {}",
            path.display(),
            e.message().trim_end()
        ))
        .with_hint("fix the config file; see docs/credentials.md for the [credentials] table")
    })?;
    let Some(table) = parsed.credentials else {
        return Ok((None, BackendSettings::default()));
    };
    let mut settings = table.settings;
    // Relative paths in a config are relative to the config file, not to the working directory.
    let base = path.parent().unwrap_or(Path::new("."));
    let rebase = |p: &mut Option<PathBuf>| {
        if let Some(v) = p.as_mut().filter(|v| v.is_relative()) {
            *v = base.join(&*v);
        }
    };
    rebase(&mut settings.file.path);
    rebase(&mut settings.file.identity);
    rebase(&mut settings.dir.root);
    Ok((table.backend, settings))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siteport_creds::BackendKind;

    #[test]
    fn reads_credentials_table_and_rebases_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("siteport.toml");
        std::fs::write(
            &cfg,
            "[credentials]\nbackend = [\"env\", \"file\"]\n[credentials.file]\npath = \"store.age\"\n\
             [credentials.vault]\naddress = \"https://v\"\n[[site]]\nname = \"x\"\n",
        )
        .unwrap();
        let (spec, settings) = load_credentials_table(&cfg).unwrap();
        assert_eq!(spec.unwrap().kinds(), [BackendKind::Env, BackendKind::File]);
        assert_eq!(settings.file.path.unwrap(), dir.path().join("store.age"));
    }

    #[test]
    fn syntax_errors_give_position_not_source_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "[site]\npassword = \"hunter2\" junk\n").unwrap();
        let e = load_credentials_table(&cfg).unwrap_err();
        assert!(e.message.contains("c.toml:2:"), "{}", e.message);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert_eq!(e.code, crate::exit::USAGE);
    }
}
