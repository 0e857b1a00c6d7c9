//! `siteport migrate`: move hard-coded passwords into the credential store (or import sites
//! from FileZilla / logins from netrc). The work is done by [`crate::migrate`]; this module
//! picks the config and backend, asks for confirmation and prints the report.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;
use siteport_creds::{BackendSettings, BackendSpec, CredentialBackend, open_backend};

use crate::config::{CONFIG_ENV, Config, find_config};
use crate::context::{BACKEND_ENV, Context};
use crate::error::{CliError, CliResult};
use crate::exit::{self, Failure};
use crate::migrate::{
    self, Action, MigrateError, MigrateErrorKind, MigrateOptions, MigrationReport,
};
use crate::prompt::terminal_available;

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

impl From<MigrateError> for CliError {
    /// Config problems exit 2, backend problems 3; the message already says what was stored.
    fn from(e: MigrateError) -> Self {
        let kind = match e.kind {
            MigrateErrorKind::Credential => "credential",
            _ => "config",
        };
        Self {
            code: exit::code(Failure::Migrate(e.kind)),
            kind,
            message: e.message,
            hint: e.hint,
        }
    }
}

/// Runs `siteport migrate`.
pub async fn run(ctx: &Context, args: MigrateArgs) -> CliResult {
    let flag = args.backend.clone().or_else(|| ctx.backend_flag.clone());
    if let Some(netrc) = &args.from_netrc {
        let backend = open(ctx, flag.as_deref(), None)?;
        let plan = migrate::import_netrc(netrc, backend.as_ref(), dry()).await?;
        return confirm_and_run(ctx, &args, plan, async || {
            Ok(migrate::import_netrc(netrc, backend.as_ref(), options(&args)).await?)
        })
        .await;
    }
    let config = config_path(ctx, &args)?;
    let existing = config.is_file().then(|| config.clone());
    let backend = open(ctx, flag.as_deref(), existing.as_deref())?;
    if let Some(xml) = &args.from_filezilla {
        let plan = migrate::import_filezilla(&config, xml, backend.as_ref(), dry()).await?;
        return confirm_and_run(ctx, &args, plan, async || {
            Ok(migrate::import_filezilla(&config, xml, backend.as_ref(), options(&args)).await?)
        })
        .await;
    }
    let plan = migrate::migrate_config(&config, backend.as_ref(), dry_env(&args)).await?;
    confirm_and_run(ctx, &args, plan, async || {
        Ok(migrate::migrate_config(&config, backend.as_ref(), options(&args)).await?)
    })
    .await
}

fn dry() -> MigrateOptions {
    MigrateOptions {
        dry_run: true,
        from_env: false,
    }
}

fn dry_env(args: &MigrateArgs) -> MigrateOptions {
    MigrateOptions {
        dry_run: true,
        from_env: args.from_env,
    }
}

fn options(args: &MigrateArgs) -> MigrateOptions {
    MigrateOptions {
        dry_run: false,
        from_env: args.from_env,
    }
}

/// Plans first (a dry run), shows it, asks unless `--yes`, then does it.
async fn confirm_and_run(
    ctx: &Context,
    args: &MigrateArgs,
    plan: MigrationReport,
    apply: impl AsyncFnOnce() -> CliResult<MigrationReport>,
) -> CliResult {
    if args.dry_run || plan.nothing_to_do() {
        return print(ctx, &plan);
    }
    if !args.yes {
        if !terminal_available() {
            return Err(CliError::usage(
                "migrate changes the config file and the credential store, and there is no \
                 terminal to confirm on",
            )
            .with_hint("check the plan with `siteport migrate --dry-run`, then run `siteport migrate --yes`"));
        }
        print(ctx, &plan)?;
        eprint!("Store these credentials and rewrite the config? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::usage(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::usage("cancelled; nothing was changed"));
        }
    }
    let done = apply().await?;
    print(ctx, &done)
}

/// CONFIG, else --config, else the usual search (SITEPORT_CONFIG, ./siteport.toml, XDG).
/// For a FileZilla import a missing file is fine: it is created.
fn config_path(ctx: &Context, args: &MigrateArgs) -> CliResult<PathBuf> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
    let named = args.config.clone().or_else(|| ctx.config_path.clone());
    if let Some(p) = named {
        let p = if p.is_relative() { cwd.join(p) } else { p };
        if p.is_file() || args.from_filezilla.is_some() {
            return Ok(p);
        }
    }
    match find_config(
        args.config.as_deref().or(ctx.config_path.as_deref()),
        &|k| std::env::var_os(k),
        &cwd,
    ) {
        Ok(p) => Ok(p),
        Err(_) if args.from_filezilla.is_some() => Ok(cwd.join(crate::config::LOCAL_CONFIG)),
        Err(e) => Err(CliError::from(e).with_hint(format!(
            "pass the config file: `siteport migrate PATH` (or set {CONFIG_ENV})"
        ))),
    }
}

/// `--backend` > `--credential-backend` > SITEPORT_CREDENTIAL_BACKEND > the config's
/// `[credentials] backend` > file; settings from the config when there is one.
fn open(
    ctx: &Context,
    flag: Option<&str>,
    config: Option<&std::path::Path>,
) -> CliResult<Box<dyn CredentialBackend>> {
    let (spec, settings) = match config {
        Some(p) => {
            let cfg = Config::load(p)?;
            (cfg.credentials.backend, cfg.credentials.settings)
        }
        None => (None, BackendSettings::default()),
    };
    let env = std::env::var(BACKEND_ENV).ok();
    let spec = BackendSpec::select(flag, env.as_deref(), spec.as_ref()).map_err(|e| {
        CliError::usage(e.to_string()).with_hint("use --backend file (or env, dir)")
    })?;
    Ok(open_backend(&spec, &settings, ctx.prompter())?)
}

fn print(ctx: &Context, r: &MigrationReport) -> CliResult {
    if ctx.output.json {
        return ctx.output.json_line(r);
    }
    let mut out = String::new();
    if let Some(d) = &r.diff
        && r.dry_run
        && !d.is_empty()
    {
        out.push_str(d);
        out.push('\n');
    }
    let what = r
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "import".into());
    out.push_str(&format!("{what}:\n"));
    let width = r
        .sites
        .iter()
        .map(|s| s.site.chars().count())
        .max()
        .unwrap_or(0);
    for s in &r.sites {
        let mut line = format!(
            "  {:<width$}  {:<22}  {}",
            s.site,
            s.finding.to_string(),
            s.action
        );
        if let Some(c) = &s.credential
            && matches!(s.action, Action::Migrated | Action::WouldMigrate)
        {
            line.push_str(&format!(" -> credential \"{c}\""));
        }
        if let Some(n) = &s.note {
            line.push_str(&format!(" ({n})"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if r.nothing_to_do() {
        out.push_str("nothing to do: no hard-coded password left to move\n");
    } else {
        let verb = if r.dry_run { "would store" } else { "stored" };
        if !r.stored.is_empty() {
            let names: Vec<&str> = r.stored.iter().map(|n| n.as_str()).collect();
            out.push_str(&format!(
                "{verb} {} credential(s) in the {}: {}\n",
                names.len(),
                r.backend,
                names.join(", ")
            ));
        }
        if !r.reused.is_empty() {
            let names: Vec<&str> = r.reused.iter().map(|n| n.as_str()).collect();
            out.push_str(&format!(
                "already in the store with the same login (reused): {}\n",
                names.join(", ")
            ));
        }
        if let Some(b) = &r.backup {
            out.push_str(&format!(
                "backup of the old config: {} (mode 0600; it still holds the old passwords: \
                 delete it once the new config works)\n",
                b.display()
            ));
        }
        if r.dry_run {
            out.push_str("dry run: nothing was changed\n");
        }
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::internal(format!("cannot write to stdout: {e}"))),
    }
}
