//! `siteport credential …`: add, remove, list and show credentials in the selected backend.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use siteport_creds::backends::env::env_var_names;
use siteport_creds::{
    BackendKind, Credential, CredentialBackend, CredentialName, Error, StoreMode,
};

use crate::cli::{AddArgs, CredentialCommand};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::logging::register_secret;
use crate::output::timestamp;
use crate::prompt;

/// Runs one `credential` subcommand.
pub async fn run(ctx: &Context, cmd: CredentialCommand) -> CliResult {
    match cmd {
        CredentialCommand::Add(args) => add(ctx, args).await,
        CredentialCommand::Remove { name } => remove(ctx, &name).await,
        CredentialCommand::List => list(ctx).await,
        CredentialCommand::Show { name, reveal } => show(ctx, &name, reveal).await,
    }
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

    let password = if args.password_stdin {
        prompt::password_from_stdin()?
    } else {
        prompt::new_password(name.as_str())?
    };
    let cred = build(name.clone(), username, password, args.host, args.port)?;
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
        host.map(str::to_owned),
        port,
    )
    .map(drop)
}

fn build(
    name: CredentialName,
    username: String,
    password: SecretString,
    host: Option<String>,
    port: Option<u16>,
) -> CliResult<Credential> {
    let mut cred = Credential::new(name, username, password).map_err(CliError::input)?;
    if let Some(h) = host {
        cred = cred.with_host(h).map_err(CliError::input)?;
    }
    if let Some(p) = port {
        cred = cred.with_port(p).map_err(CliError::input)?;
    }
    Ok(cred)
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
    let text = format!(
        "name:     {}\nusername: {}\npassword: {}\nhost:     {}\nport:     {}\ncreated:  {}\nupdated:  {}\nbackend:  {}",
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
