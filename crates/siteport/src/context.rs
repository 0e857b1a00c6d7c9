//! What every command needs from the global flags: the output mode, and the credential backend
//! chosen by `--credential-backend` > `SITEPORT_CREDENTIAL_BACKEND` > config > `file`.

use std::path::PathBuf;
use std::sync::Arc;

use siteport_creds::{BackendSettings, BackendSpec, CredentialBackend, Prompter, open_backend};

use crate::config::{CONFIG_ENV, Config, ConfigErrorKind, find_config};

use crate::error::{CliError, CliResult};
use crate::logging::Verbosity;
use crate::output::Output;
use crate::prompt::TerminalPrompter;

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
    /// `-v…`/`-q`: decides progress bars and per-file lines.
    pub verbosity: Verbosity,
    /// Where per-site journals go instead of `$XDG_STATE_HOME/siteport` (`siteport demo` keeps
    /// everything in its temp dir).
    pub state_dir: Option<PathBuf>,
}

impl Context {
    /// The backend spec and settings, after applying the precedence rules.
    pub fn credentials(&self) -> CliResult<(BackendSpec, BackendSettings)> {
        let (config_spec, settings) = match self.find_config()? {
            Some(path) => {
                let cfg = Config::load(&path)?;
                (cfg.credentials.backend, cfg.credentials.settings)
            }
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

    /// The config file, which the site commands need: not finding one is a usage error
    /// (exit 2) with the places looked at.
    pub fn load_config(&self) -> CliResult<Config> {
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
        let path = find_config(self.config_path.as_deref(), &|k| std::env::var_os(k), &cwd)?;
        Ok(Config::load(&path)?)
    }

    /// The config file if there is one (`credential test` works without).
    pub fn optional_config(&self) -> CliResult<Option<Config>> {
        match self.find_config()? {
            Some(p) => Ok(Some(Config::load(&p)?)),
            None => Ok(None),
        }
    }

    /// The journal directory: the override, else `$XDG_STATE_HOME/siteport/journal`, else
    /// `~/.local/state/siteport/journal`.
    pub fn journal_dir(&self) -> CliResult<PathBuf> {
        if let Some(d) = &self.state_dir {
            return Ok(d.join("journal"));
        }
        let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".local/state"),
                None => {
                    return Err(CliError::usage(
                        "cannot place the sync journal: neither XDG_STATE_HOME nor HOME is set",
                    )
                    .with_hint("set XDG_STATE_HOME (or HOME) to a writable directory"));
                }
            },
        };
        Ok(state.join("siteport").join("journal"))
    }

    /// `--config`, then `SITEPORT_CONFIG` (both must exist), then `./siteport.toml`, then
    /// `$XDG_CONFIG_HOME/siteport/config.toml`; `None` when none of the last two exists, since
    /// the credential commands work without a config.
    fn find_config(&self) -> CliResult<Option<PathBuf>> {
        let named = self.config_path.is_some()
            || std::env::var_os(CONFIG_ENV).is_some_and(|v| !v.is_empty());
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
        match find_config(self.config_path.as_deref(), &|k| std::env::var_os(k), &cwd) {
            Ok(p) => Ok(Some(p)),
            Err(e) if !named && e.kind() == ConfigErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn backend_hint() -> String {
    "use one of file, env, dir (or a chain such as `env,file`) in --credential-backend, \
     SITEPORT_CREDENTIAL_BACKEND or [credentials] backend"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_named_config_is_an_error_missing_default_is_not() {
        let ctx = Context {
            output: Output { json: false },
            backend_flag: None,
            config_path: Some(PathBuf::from("/nonexistent/siteport.toml")),
            verbosity: Verbosity::Normal,
            state_dir: None,
        };
        let e = ctx.find_config().unwrap_err();
        assert_eq!(e.code, crate::exit::USAGE);
        assert!(
            e.message.contains("/nonexistent/siteport.toml"),
            "{}",
            e.message
        );
    }
}
