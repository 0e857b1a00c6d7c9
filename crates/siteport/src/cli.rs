//! Argument parsing (clap derive) and dispatch: the global flags and the top-level commands.
//! Each command's own arguments are defined next to it, in `commands/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use secrecy::SecretString;
use siteport_creds::backends::env::ENV_PREFIX;
use siteport_creds::backends::file::PASSPHRASE_ENV;

use crate::commands::config_check::{self, ConfigCommand};
use crate::commands::credential::{self, CredentialCommand};
use crate::commands::demo;
use crate::commands::export_import::{self, ExportArgs, ImportArgs};
use crate::commands::migrate::MigrateArgs;
use crate::commands::site_lock::{self, UnlockArgs};
use crate::commands::site_trust::{self, SiteCommand};
use crate::commands::status::{self, StatusArgs};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::logging::{self, Verbosity};
use crate::output::Output;

/// Publish websites to FTP/FTPS servers and pull them back, with passwords kept in a credential
/// store instead of the config file.
#[derive(Debug, Parser)]
#[command(name = "siteport", version, after_help = exit::HELP_TABLE)]
pub struct Cli {
    /// Config file [default: $SITEPORT_CONFIG, ./siteport.toml, $XDG_CONFIG_HOME/siteport/config.toml]
    #[arg(long, global = true, value_name = "F")]
    pub config: Option<PathBuf>,

    /// Credential backend: file, env, dir, … or a chain such as `env,file`
    /// [default: $SITEPORT_CREDENTIAL_BACKEND, then config, then file]
    #[arg(long, global = true, value_name = "KIND")]
    pub credential_backend: Option<String>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Secrets are always masked.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Machine-readable JSON on stdout (and JSON error objects on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Also append everything written to stderr (at the -v/-q level chosen, secrets masked the
    /// same way, progress bars left out) to PATH, created 0600; a symlink there is refused.
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Open a credential store whose recipients changed since your identity last wrote it
    /// (someone added or removed a recipient), and remember the new set. Without it such a
    /// store is refused (exit 3): see docs/security.md.
    #[arg(long, global = true)]
    pub accept_recipients: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage stored FTP credentials.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Move hard-coded passwords from the config into the credential store and rewrite the
    /// config to `credential = "NAME"` (a 0600 backup of the old file is kept). Also imports
    /// FileZilla sites (--from-filezilla) and netrc logins (--from-netrc).
    Migrate(MigrateArgs),
    /// Publish sites: send what changed locally to the FTP server.
    Export(ExportArgs),
    /// Pull sites back: fetch what changed on the FTP server into the local directory.
    Import(ImportArgs),
    /// Show what `export SITE` would do (action, path, size, reason), changing nothing.
    Plan {
        /// Site name (a `[[site]]` in the config).
        site: String,
        /// Filters and comparison, as for `export`.
        #[command(flatten)]
        filters: crate::commands::filters::FilterArgs,
    },
    /// Show a site's last deploy, its lock holder (if any) and what this machine's journal knows.
    Status(StatusArgs),
    /// Free a site's lock left by a dead run (prints who held it; asks nothing).
    Unlock(UnlockArgs),
    /// Work with a site: `site trust SITE` pins an SFTP server's host key in the config.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Work with the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a complete export and import against a throw-away embedded FTP server, with a
    /// temporary credential store: nothing of yours is read or written.
    Demo,
    /// The GitHub Action's entrypoint: runs `export` from the runner's INPUT_* variables and
    /// writes files-sent, bytes-sent, files-deleted to $GITHUB_OUTPUT (see docs/ci.md).
    #[command(hide = true)]
    GithubAction,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the man page (roff, generated from this help) to stdout:
    /// `siteport man > siteport.1`, or `siteport man | man -l -`.
    Man,
}

/// Runs the CLI: parses arguments, sets up logging, runs the command and maps the outcome to
/// an exit code from [`crate::exit`].
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap exits 0 for --help/--version and 2 for usage errors, as documented.
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(exit::USAGE));
        }
    };
    logging::init(Verbosity::from_flags(cli.verbose, cli.quiet));
    register_env_secrets();
    let output = Output { json: cli.json };
    if let Some(p) = &cli.log_file {
        // Another user who can write in the log's directory could swap the log for a link or
        // their own file between runs.
        let opened = siteport_fsguard::check_parent("log file directory", p, false)
            .map_err(CliError::from)
            .and_then(|()| {
                logging::open_log_file(p).map_err(|e| {
                    CliError::usage(format!("--log-file {}: {e}", p.display())).with_hint(
                        "name a regular file in a writable directory (symlinks are refused)",
                    )
                })
            });
        if let Err(e) = opened {
            output.error(&e);
            return ExitCode::from(e.code);
        }
    }
    let code = match run(cli) {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::debug!(code = e.code, kind = e.kind, "command failed");
            output.error(&e);
            e.code
        }
    };
    // Nothing is printed after this: wipe the secrets the redactor held.
    logging::clear_secrets();
    ExitCode::from(code)
}

/// Secrets that reach the process through its environment (the store passphrase, env-backend
/// passwords, SSH keys and their passphrases) are masked in stderr output from the start,
/// before any backend reads them.
fn register_env_secrets() {
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let ours = key.starts_with(ENV_PREFIX);
        let secret = key == PASSPHRASE_ENV
            || (ours && (key.ends_with("_PASSWORD") || key.ends_with("_SSH_KEY_PASSPHRASE")));
        match value.to_str() {
            Some(v) if ours && key.ends_with("_SSH_KEY") => {
                logging::register_key(&SecretString::from(v));
            }
            Some(v) if secret => logging::register_secret(&SecretString::from(v)),
            _ => {}
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let mut ctx = Context::new(
        Output { json: cli.json },
        cli.credential_backend,
        cli.config,
        Verbosity::from_flags(cli.verbose, cli.quiet),
        None,
    );
    ctx.accept_recipients = cli.accept_recipients;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Into a buffer first: `generate` panics on a write error, and a closed pipe
            // (`siteport completions bash | head -1`) must end the command quietly.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "siteport", &mut buf);
            crate::output::stdout_bytes(&buf)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| CliError::internal(format!("cannot render the man page: {e}")))?;
            crate::output::stdout_bytes(&buf)
        }
        Command::Credential(c) => block_on(credential::run(&ctx, c)),
        Command::Migrate(m) => block_on(crate::commands::migrate::run(&ctx, m)),
        Command::Export(a) => {
            block_on(export_import::run(&ctx, &export_import::Request::export(a)))
        }
        Command::Import(a) => {
            block_on(export_import::run(&ctx, &export_import::Request::import(a)))
        }
        Command::Plan { site, filters } => block_on(export_import::run(
            &ctx,
            &export_import::Request::plan(site, filters),
        )),
        Command::Status(a) => block_on(status::run(&ctx, a)),
        Command::Unlock(a) => block_on(site_lock::unlock(&ctx, a)),
        Command::Site(c) => block_on(site_trust::run(&ctx, c)),
        Command::Config(ConfigCommand::Check) => block_on(config_check::run(&ctx)),
        Command::Demo => block_on(demo::run(&ctx)),
        Command::GithubAction => crate::commands::ci_action::run(),
    }
}

/// Backends are async; the CLI runs one command at a time on a single-threaded runtime.
fn block_on<F: std::future::Future<Output = CliResult>>(f: F) -> CliResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("3  credential store error"), "{help}");
    }
}
