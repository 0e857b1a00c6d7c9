//! `siteport credential …`: add, remove, list and show credentials in the selected backend.

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use siteport_creds::backends::env::env_var_names;
use siteport_creds::backends::file::{FileBackend, InitOptions, KeyMode, RekeyOptions};
use siteport_creds::{
    BackendKind, Credential, CredentialBackend, CredentialName, Error, StoreMode,
};

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::logging::register_secret;
use crate::output::timestamp;
use crate::prompt;

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
    Export(super::credential_export::ExportArgs),
    /// Log in to the FTP server with each credential (host and port from the credential or
    /// from the sites that use it) and report per credential.
    Test(super::credential_test::TestArgs),
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
    /// Store this SSH private key (OpenSSH or PEM file) for SFTP sites. With it, no password
    /// is asked for unless --password-stdin is given. (--ssh-key-file is the older spelling.)
    #[arg(long = "ssh-key", visible_alias = "ssh-key-file", value_name = "FILE")]
    pub ssh_key_file: Option<std::path::PathBuf>,
    /// Read the passphrase of an encrypted --ssh-key from the first line of stdin
    /// (otherwise it is asked for on the terminal).
    #[arg(long, requires = "ssh_key_file", conflicts_with = "password_stdin")]
    pub ssh_key_passphrase_stdin: bool,
    /// Replace an existing credential of that name.
    #[arg(long)]
    pub force: bool,
    /// Log in with it before storing it (on the servers of the sites that use the name, else
    /// its own --host); a refused login stores nothing (exit 4).
    #[arg(long)]
    pub verify: bool,
}

/// Runs one `credential` subcommand.
pub async fn run(ctx: &Context, cmd: CredentialCommand) -> CliResult {
    match cmd {
        CredentialCommand::Add(args) => add(ctx, args).await,
        CredentialCommand::Remove { name } => remove(ctx, &name).await,
        CredentialCommand::List => list(ctx).await,
        CredentialCommand::Show { name, reveal } => show(ctx, &name, reveal).await,
        CredentialCommand::Init(args) => init(ctx, args),
        CredentialCommand::Rekey(args) => rekey(ctx, args).await,
        CredentialCommand::Export(args) => super::credential_export::run(ctx, args).await,
        CredentialCommand::Test(args) => crate::commands::credential_test::run(ctx, args).await,
    }
}

/// `init` and `rekey` manage the file backend's keys; they make no sense for a selection without it.
fn file_settings(ctx: &Context, command: &str) -> CliResult<siteport_creds::FileSettings> {
    let (spec, settings) = ctx.credentials()?;
    if !spec.kinds().contains(&BackendKind::File) {
        return Err(CliError::usage(format!(
            "`credential {command}` manages the encrypted file store, but the selected credential \
             backend is `{spec}`"
        ))
        .with_hint(format!(
            "run `siteport --credential-backend file credential {command}`"
        )));
    }
    Ok(settings.file)
}

fn init(ctx: &Context, args: InitArgs) -> CliResult {
    let settings = file_settings(ctx, "init")?;
    let opts = InitOptions {
        mode: if args.passphrase {
            KeyMode::Passphrase
        } else {
            KeyMode::Identity
        },
        recipients: args.recipient,
        force: args.force,
    };
    let report = FileBackend::init(&settings, opts, ctx.prompter())?;
    let mut human = format!(
        "created credential store {} ({} mode)",
        report.store.display(),
        report.mode
    );
    if let Some(id) = &report.identity {
        let how = if report.identity_created {
            "generated"
        } else {
            "re-used"
        };
        human.push_str(&format!(
            "\nidentity:   {} ({how}; keep it safe, it opens the store)",
            id.display()
        ));
    }
    if let Some(pk) = &report.public_key {
        human.push_str(&format!("\npublic key: {pk}"));
    }
    for b in &report.backups {
        human.push_str(&format!("\nbackup of the previous store: {}", b.display()));
    }
    ctx.output.result(
        &human,
        &json!({
            "store": report.store,
            "mode": report.mode,
            "identity": report.identity,
            "identity_created": report.identity_created,
            "public_key": report.public_key,
            "backups": report.backups,
        }),
    )
}

async fn rekey(ctx: &Context, args: RekeyArgs) -> CliResult {
    let settings = file_settings(ctx, "rekey")?;
    let backend = FileBackend::open(&settings, ctx.prompter())?;
    let mode = if args.passphrase {
        KeyMode::Passphrase
    } else if args.identity
        || args.new_identity
        || !args.recipient.is_empty()
        || args.clear_recipients
    {
        KeyMode::Identity
    } else {
        // No mode asked for: re-encrypt in the store's current mode.
        backend.detect_mode()?.ok_or_else(|| {
            Error::new(
                siteport_creds::ErrorKind::NotFound,
                backend.describe(),
                "there is no credential store to rekey",
            )
            .with_hint("create one with `siteport credential init`")
        })?
    };
    let recipients = if args.clear_recipients {
        Some(Vec::new())
    } else if args.recipient.is_empty() {
        None
    } else {
        Some(args.recipient)
    };
    let report = backend
        .rekey(RekeyOptions {
            mode,
            new_identity: args.new_identity,
            recipients,
        })
        .await?;
    let mut human = format!(
        "re-encrypted {} ({} mode)\nbackup of the old store: {}",
        report.store.display(),
        report.mode,
        report.backup.display()
    );
    if let Some(pk) = &report.public_key {
        human.push_str(&format!("\npublic key: {pk}"));
    }
    if let Some(b) = &report.identity_backup {
        human.push_str(&format!("\nbackup of the old identity: {}", b.display()));
    }
    if report.recipients.len() > 1 {
        human.push_str(&format!("\nrecipients: {}", report.recipients.join(", ")));
    }
    ctx.output.result(
        &human,
        &json!({
            "store": report.store,
            "mode": report.mode,
            "backup": report.backup,
            "public_key": report.public_key,
            "identity_backup": report.identity_backup,
            "recipients": report.recipients,
        }),
    )
}

fn parse_name(name: &str) -> CliResult<CredentialName> {
    CredentialName::new(name).map_err(|e| {
        CliError::input(e).with_hint("names are 1-64 characters of a-z, 0-9, '.', '_' and '-'")
    })
}

async fn add(ctx: &Context, args: AddArgs) -> CliResult {
    let name = parse_name(&args.name)?;
    // Everything that can fail without the password is checked before anyone types it.
    let backend = ctx.backend()?;
    if !backend.is_writable() {
        return Err(read_only(backend.as_ref(), &name).into());
    }
    let username = match args.username {
        Some(u) => u,
        None => prompt::username(name.as_str())?,
    };
    precheck(&name, &username, args.host.as_deref(), args.port)?;
    if !args.force && !ctx.is_chain()? {
        // Say "already exists" (or "wrong key") before the user types a password for nothing.
        // `store` checks again under the lock; in a chain, `get` may hit another member.
        match backend.get(&name).await {
            Ok(_) => return Err(Error::already_exists(backend.describe(), &name).into()),
            Err(e) if e.kind() == siteport_creds::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }

    let key = match &args.ssh_key_file {
        Some(path) => Some(super::credential_key::read_key(
            name.as_str(),
            path,
            args.ssh_key_passphrase_stdin,
        )?),
        None => None,
    };
    let password = if args.password_stdin {
        prompt::password_from_stdin()?
    } else if key.is_some() {
        // A key logs in alone; an empty password marks a key-only credential.
        SecretString::from(String::new())
    } else {
        prompt::new_password(name.as_str())?
    };
    let cred = build(
        name.clone(),
        username,
        password,
        key,
        (args.host, args.port),
    )?;
    let short = cred.password().expose_secret().chars().count();
    if short < crate::logging::SHORT_SECRET && cred.ssh_key().is_none() {
        // Short passwords are guessable, and the redactor can only mask them as whole words.
        tracing::warn!(
            credential = %name,
            "short password ({short} character(s)): fewer than {} is easy to guess, and \
             is masked in output only where it stands as a whole word",
            crate::logging::SHORT_SECRET
        );
    }
    if args.verify {
        crate::logging::register_secret(cred.password());
        crate::commands::credential_verify::verify(ctx, backend.as_ref(), &cred).await?;
    }
    let mode = if args.force {
        StoreMode::Replace
    } else {
        StoreMode::CreateNew
    };
    tracing::info!(credential = %name, backend = %backend.describe(), ?mode, "storing credential");
    backend.store(&cred, mode).await?;
    let where_ = backend.describe();
    ctx.output.result(
        &format!("stored credential '{name}' in {where_}"),
        &json!({ "stored": name, "backend": where_, "replace": args.force }),
    )
}

/// Validates username, host and port with a stand-in password, so that a typo in a flag is
/// reported before the user is asked for the real password.
fn precheck(
    name: &CredentialName,
    username: &str,
    host: Option<&str>,
    port: Option<u16>,
) -> CliResult {
    build(
        name.clone(),
        username.to_owned(),
        SecretString::from("placeholder"),
        None,
        (host.map(str::to_owned), port),
    )
    .map(drop)
}

fn build(
    name: CredentialName,
    username: String,
    password: SecretString,
    key: Option<(SecretString, Option<SecretString>)>,
    (host, port): (Option<String>, Option<u16>),
) -> CliResult<Credential> {
    let (key, passphrase) = key.unzip();
    let mut cred = Credential::from_parts(
        name.clone(),
        username,
        Some(password),
        key,
        passphrase.flatten(),
    )
    .map_err(|e| input_error(&name, e))?;
    if let Some(h) = host {
        cred = cred.with_host(h).map_err(|e| input_error(&name, e))?;
    }
    if let Some(p) = port {
        cred = cred.with_port(p).map_err(|e| input_error(&name, e))?;
    }
    Ok(cred)
}

/// A rejected field, with the way to give it again (the value itself is never echoed).
fn input_error(name: &CredentialName, e: siteport_creds::ValidationError) -> CliError {
    let hint = match e.field {
        "password" => format!(
            "give the password again, on one line without control characters: `siteport credential add {name} --password-stdin`"
        ),
        "port" => {
            format!("give a port from 1 to 65535: `siteport credential add {name} --port 21`")
        }
        "ssh_key" | "ssh_key_passphrase" => format!(
            "give the private key file (not the .pub) and its passphrase on one line: \
             `siteport credential add {name} --ssh-key ~/.ssh/id_ed25519 --force`"
        ),
        field => format!(
            "give the {field} again without control characters, spaces or '/' (hosts), at most 1024 bytes: `siteport credential add {name} --{field} …`"
        ),
    };
    CliError::input(e).with_hint(hint)
}

/// `add` on a read-only backend: say how that backend is fed instead of pretending to persist.
fn read_only(backend: &dyn CredentialBackend, name: &CredentialName) -> Error {
    let hint = match backend.kind() {
        BackendKind::Env => {
            let v = env_var_names(name);
            format!(
                "the env backend only reads the process environment: export {} and {} (or {}_FILE \
                 naming a secret file) where siteport runs, or store it in the file backend with \
                 `siteport --credential-backend file credential add {name}`",
                v.username, v.password, v.password
            )
        }
        BackendKind::Dir => format!(
            "the dir backend reads a mounted secrets directory: create <root>/{name}/username and \
             <root>/{name}/password, or store it in the file backend with \
             `siteport --credential-backend file credential add {name}`"
        ),
        _ => format!(
            "store it in a writable backend: `siteport --credential-backend file credential add {name}`"
        ),
    };
    Error::unsupported(backend.describe(), "adding a credential").with_hint(hint)
}

async fn remove(ctx: &Context, name: &str) -> CliResult {
    let name = parse_name(name)?;
    let backend = ctx.backend()?;
    backend.delete(&name).await?;
    let where_ = backend.describe();
    ctx.output.result(
        &format!("removed credential '{name}' from {where_}"),
        &json!({ "removed": name, "backend": where_ }),
    )
}

async fn list(ctx: &Context) -> CliResult {
    let backend = ctx.backend()?;
    let items = backend.list().await?;
    ctx.output.credential_list(&backend.describe(), &items)
}

async fn show(ctx: &Context, name: &str, reveal: bool) -> CliResult {
    let name = parse_name(name)?;
    let backend = ctx.backend()?;
    let cred = backend.get(&name).await?;
    register_secret(cred.password());
    let where_ = backend.describe();
    if ctx.output.json {
        let mut v = json!({
            "name": cred.name(),
            "username": cred.username(),
            "host": cred.host(),
            "port": cred.port(),
            "created": cred.created().map(|t| timestamp(Some(t))),
            "updated": cred.updated().map(|t| timestamp(Some(t))),
            "backend": where_,
            // Whether there is one, never the key: --reveal is for the password only.
            "ssh_key": cred.ssh_key().is_some(),
        });
        if reveal {
            v["password"] = json!(cred.password().expose_secret());
        }
        return ctx.output.json_line(&v);
    }
    let password = if reveal {
        cred.password().expose_secret()
    } else {
        "****"
    };
    let ssh_key = match (cred.ssh_key(), cred.ssh_key_passphrase()) {
        (None, _) => "-",
        (Some(_), None) => "stored (not shown)",
        (Some(_), Some(_)) => "stored, with its passphrase (not shown)",
    };
    let text = format!(
        "name:     {}\nusername: {}\npassword: {}\nssh key:  {ssh_key}\nhost:     {}\nport:     {}\ncreated:  {}\nupdated:  {}\nbackend:  {}",
        cred.name(),
        cred.username(),
        password,
        cred.host().unwrap_or("-"),
        cred.port().map_or_else(|| "-".into(), |p| p.to_string()),
        timestamp(cred.created()),
        timestamp(cred.updated()),
        where_,
    );
    // The revealed text holds the password: wipe it once printed.
    let text = zeroize::Zeroizing::new(text);
    ctx.output.result(&text, &serde_json::Value::Null)
}
