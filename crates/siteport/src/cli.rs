//! Argument parsing (clap derive) and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use secrecy::SecretString;
use siteport_creds::backends::env::ENV_PREFIX;
use siteport_creds::backends::file::PASSPHRASE_ENV;

use crate::commands::{check, credential, demo, sync};
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
    },
    /// Work with the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a complete export and import against a throw-away embedded FTP server, with a
    /// temporary credential store: nothing of yours is read or written.
    Demo,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// `siteport migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The config file to migrate [default: --config, then the usual search].
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Where to store the passwords (file, dir, …) [default: as --credential-backend].
    #[arg(long, value_name = "KIND")]
    pub backend: Option<String>,
    /// Show the diff (passwords masked) and the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also move `password = "${VAR}"`: copy the variable's current value into the store.
    #[arg(long)]
    pub from_env: bool,
    /// Append the sites of FileZilla's sitemanager.xml to the config, passwords into the store.
    #[arg(long, value_name = "XML", conflicts_with_all = ["from_netrc", "from_env"])]
    pub from_filezilla: Option<PathBuf>,
    /// Store the logins of a netrc file (machine/login/password) as credentials.
    #[arg(long, value_name = "NETRC", conflicts_with_all = ["from_env", "config"])]
    pub from_netrc: Option<PathBuf>,
}

/// `siteport credential …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create the encrypted credential store (file backend), generating an age identity unless
    /// --passphrase is given.
    Init(InitArgs),
    /// Store a credential. The password is read from a hidden prompt or --password-stdin, never
    /// from the command line.
    Add(AddArgs),
    /// Delete a credential.
    Remove {
        /// Credential name.
        name: String,
    },
    /// List credentials (never their passwords).
    List,
    /// Show one credential; the password is masked unless --reveal.
    Show {
        /// Credential name.
        name: String,
        /// Print the password too.
        #[arg(long)]
        reveal: bool,
    },
    /// Re-encrypt the store (file backend) to a new identity, a passphrase, or a new set of
    /// recipients. The old store is kept as a backup.
    Rekey(RekeyArgs),
    /// Write credentials as an env file, a Docker secrets directory or a Kubernetes Secret,
    /// for containers (files 0600; stdout only with `-o -`).
    Export(crate::commands::credential_export::ExportArgs),
    /// Log in to the FTP server with each credential (host and port from the credential or
    /// from the sites that use it) and report per credential.
    Test(TestArgs),
}

/// `siteport config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and resolve every reference of every site (credentials included),
    /// without printing a secret.
    Check,
}

/// Which sites a transfer command works on.
#[derive(Debug, Args)]
pub struct SiteSelection {
    /// Site names (`[[site]]` entries of the config).
    #[arg(value_name = "SITE", required_unless_present = "all")]
    pub sites: Vec<String>,
    /// Every site of the config, in file order.
    #[arg(long, conflicts_with = "sites")]
    pub all: bool,
}

/// Options shared by `export` and `import`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The sites.
    #[command(flatten)]
    pub selection: SiteSelection,
    /// Print the plan (action, path, size, reason) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete what is gone from the source (the site's `delete = true` does the same for export).
    #[arg(long)]
    pub delete: bool,
    /// Parallel FTP connections [default: the site's max_connections, else 4].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

/// `siteport export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Sites and options.
    #[command(flatten)]
    pub common: TransferArgs,
    /// Compare content hashes for every file instead of trusting size and time.
    #[arg(long)]
    pub checksum: bool,
    /// Compare sizes and times only, never hashes: faster on a first export over a tree
    /// another tool uploaded, but a same-size edit is not sent.
    #[arg(long, conflicts_with = "checksum")]
    pub size_only: bool,
}

/// `siteport import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Sites and options.
    #[command(flatten)]
    pub common: TransferArgs,
}

/// `siteport credential test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Credential names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Every credential in the selected backend.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

/// `siteport credential init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Encrypt with a passphrase (age scrypt) instead of an identity file. The passphrase comes
    /// from SITEPORT_PASSPHRASE, `passphrase_command` in the config, or a hidden prompt.
    #[arg(long)]
    pub passphrase: bool,
    /// Also encrypt to this recipient (`age1…` or an SSH public key); repeatable.
    #[arg(long, value_name = "R", conflicts_with = "passphrase")]
    pub recipient: Vec<String>,
    /// Replace an existing store (it is kept as a backup).
    #[arg(long)]
    pub force: bool,
}

/// `siteport credential rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Switch to (or stay in) passphrase mode; asks for the new passphrase.
    #[arg(long, conflicts_with = "identity")]
    pub passphrase: bool,
    /// Switch to (or stay in) identity mode.
    #[arg(long)]
    pub identity: bool,
    /// Generate a new identity; the old identity file is backed up.
    #[arg(long, conflicts_with = "passphrase")]
    pub new_identity: bool,
    /// The new set of extra recipients (`age1…` or SSH public keys); repeatable. Without it
    /// the current extra recipients are kept.
    #[arg(long, value_name = "R", conflicts_with = "passphrase")]
    pub recipient: Vec<String>,
    /// Drop every extra recipient: encrypt to the own identity only.
    #[arg(long, conflicts_with_all = ["passphrase", "recipient"])]
    pub clear_recipients: bool,
}

/// `siteport credential add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Credential name: 1-64 characters of a-z, 0-9, '.', '_', '-' (lowercased).
    pub name: String,
    /// FTP username (prompted on a terminal when missing).
    #[arg(long, short = 'u', value_name = "U")]
    pub username: Option<String>,
    /// FTP host the credential belongs to.
    #[arg(long, value_name = "H")]
    pub host: Option<String>,
    /// FTP port.
    #[arg(long, short = 'p', value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Read the password from the first line of stdin (only the trailing newline is removed).
    #[arg(long)]
    pub password_stdin: bool,
    /// Replace an existing credential of that name.
    #[arg(long)]
    pub force: bool,
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
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            tracing::debug!(code = e.code, kind = e.kind, "command failed");
            output.error(&e);
            ExitCode::from(e.code)
        }
    }
}

/// Secrets that reach the process through its environment (the store passphrase, env-backend
/// passwords) are masked in stderr output from the start, before any backend reads them.
fn register_env_secrets() {
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let secret =
            key == PASSPHRASE_ENV || (key.starts_with(ENV_PREFIX) && key.ends_with("_PASSWORD"));
        if let (true, Some(v)) = (secret, value.to_str()) {
            logging::register_secret(&SecretString::from(v));
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let ctx = Context {
        output: Output { json: cli.json },
        backend_flag: cli.credential_backend,
        config_path: cli.config,
        verbosity: Verbosity::from_flags(cli.verbose, cli.quiet),
        state_dir: None,
    };
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "siteport", &mut std::io::stdout());
            Ok(())
        }
        Command::Credential(c) => block_on(credential::run(&ctx, c)),
        Command::Migrate(m) => block_on(crate::commands::migrate::run(&ctx, m)),
        Command::Export(a) => block_on(sync::run(&ctx, &sync::Request::export(a))),
        Command::Import(a) => block_on(sync::run(&ctx, &sync::Request::import(a))),
        Command::Plan { site } => block_on(sync::run(&ctx, &sync::Request::plan(site))),
        Command::Config(ConfigCommand::Check) => block_on(check::run(&ctx)),
        Command::Demo => block_on(demo::run(&ctx)),
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
