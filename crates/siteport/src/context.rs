//! What every command needs from the global flags: the output mode, the config file (read
//! once per command run) and the credential backend chosen by `--credential-backend` >
//! `SITEPORT_CREDENTIAL_BACKEND` > config > `file`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use siteport_creds::{BackendSettings, BackendSpec, CredentialBackend, Prompter, open_backend};

use crate::config::{CONFIG_ENV, Config, ConfigErrorKind, find_config};

use crate::error::{CliError, CliResult};
use crate::logging::Verbosity;
use crate::output::Output;
use crate::prompt::TerminalPrompter;

/// Environment variable selecting the backend (read here so that the CLI controls it).
pub const BACKEND_ENV: &str = "SITEPORT_CREDENTIAL_BACKEND";

/// Global state for one command run.
#[derive(Debug)]
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
    /// `--accept-recipients`: the file backend opens a store whose recipients changed.
    pub accept_recipients: bool,
    /// The config file as found and read by the first command step that needed it (`None`:
    /// there is none where one is only looked for). Commands need it for their sites and for
    /// the backend selection: it is read and parsed once per run, not once per need.
    config: OnceLock<Option<Config>>,
}

impl Context {
    /// The state for one run from the global flags (the config is read when first needed).
    pub fn new(
        output: Output,
        backend_flag: Option<String>,
        config_path: Option<PathBuf>,
        verbosity: Verbosity,
        state_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            output,
            backend_flag,
            config_path,
            verbosity,
            state_dir,
            accept_recipients: false,
            config: OnceLock::new(),
        }
    }

    /// The backend spec and settings, after applying the precedence rules.
    pub fn credentials(&self) -> CliResult<(BackendSpec, BackendSettings)> {
        let (config_spec, mut settings) = match self.config_if_any()? {
            Some(cfg) => (
                cfg.credentials.backend.clone(),
                cfg.credentials.settings.clone(),
            ),
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
        settings.file.accept_recipients = self.accept_recipients;
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
    /// (exit 2) with the places looked at. Read once per run (see [`Self::config_if_any`]).
    pub fn config(&self) -> CliResult<&Config> {
        if let Some(cfg) = self.config_if_any()? {
            return Ok(cfg);
        }
        // Nothing where one is only looked for: the strict search says where it looked.
        match find_config(
            self.config_path.as_deref(),
            &|k| std::env::var_os(k),
            &cwd()?,
        ) {
            Err(e) => Err(e.into()),
            // Only if the file appeared since it was looked for: not read halfway through a run.
            Ok(p) => Err(CliError::usage(format!(
                "config file {} appeared while siteport was running",
                p.display()
            ))
            .with_hint("run the command again")),
        }
    }

    /// The config file if there is one (`credential test` and the credential commands work
    /// without). Found and read the first time it is asked for; later calls (the backend
    /// selection, the command itself) get the same parsed file without reading it again. A
    /// failure is not kept: it ends the command.
    pub fn config_if_any(&self) -> CliResult<Option<&Config>> {
        if let Some(cached) = self.config.get() {
            return Ok(cached.as_ref());
        }
        let loaded = match self.find_config()? {
            Some(p) => {
                // Whoever can change the config can send the next deploy, and its password,
                // to a server of their own.
                siteport_fsguard::check_shared_file("config file", &p)?;
                Some(Config::load(&p)?)
            }
            None => None,
        };
        Ok(self.config.get_or_init(|| loaded).as_ref())
    }

    /// A copy of [`Self::config`] (read once per run all the same).
    pub fn load_config(&self) -> CliResult<Config> {
        self.config().cloned()
    }

    /// A copy of [`Self::config_if_any`] (read once per run all the same).
    pub fn optional_config(&self) -> CliResult<Option<Config>> {
        Ok(self.config_if_any()?.cloned())
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
        match find_config(
            self.config_path.as_deref(),
            &|k| std::env::var_os(k),
            &cwd()?,
        ) {
            Ok(p) => Ok(Some(p)),
            Err(e) if !named && e.kind() == ConfigErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn cwd() -> CliResult<PathBuf> {
    std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))
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
        let ctx = Context::new(
            Output { json: false },
            None,
            Some(PathBuf::from("/nonexistent/siteport.toml")),
            Verbosity::Normal,
            None,
        );
        let e = ctx.find_config().unwrap_err();
        assert_eq!(e.code, crate::exit::USAGE);
        assert!(
            e.message.contains("/nonexistent/siteport.toml"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_config_is_read_once_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("siteport.toml");
        std::fs::write(
            &path,
            "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"a\"\nhost = \"h\"\nlocal = \".\"\n",
        )
        .unwrap();
        let ctx = Context::new(
            Output { json: false },
            None,
            Some(path.clone()),
            Verbosity::Normal,
            None,
        );
        let first: *const Config = ctx.config().unwrap();
        // Gone from disk: every later need is served from the one read.
        std::fs::remove_file(&path).unwrap();
        let (spec, _) = ctx.credentials().unwrap();
        assert_eq!(spec.to_string(), "env");
        assert!(std::ptr::eq(first, ctx.config().unwrap()));
        assert!(std::ptr::eq(first, ctx.config_if_any().unwrap().unwrap()));
        assert_eq!(ctx.load_config().unwrap().sites.len(), 1);
        assert!(ctx.backend().is_ok());
    }
}
