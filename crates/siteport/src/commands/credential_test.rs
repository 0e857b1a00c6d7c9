//! `siteport credential test [NAME…|--all]`: log in to the FTP server with each credential and
//! report per credential. The server comes from the sites that use the credential (with their
//! TLS settings), else from the credential's own host and port (explicit TLS).

use clap::Args;
use serde_json::json;
use siteport_creds::reference::process_env;
use siteport_creds::{Credential, CredentialBackend, CredentialName};
use siteport_sync::{Endpoint, FtpSettings, Login, Protocol, TlsMode, test_login};

use crate::commands::site::endpoint;
use crate::config::Config;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit::Failure;
use crate::logging::register_secret;
use crate::output::print_line;

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

/// One login attempt's outcome.
pub(crate) struct Outcome {
    pub(crate) name: String,
    pub(crate) server: Option<String>,
    pub(crate) site: Option<String>,
    pub(crate) error: Option<CliError>,
}

/// Runs `credential test`.
pub async fn run(ctx: &Context, args: TestArgs) -> CliResult {
    let backend = ctx.backend()?;
    let cfg = ctx.optional_config()?;
    let names: Vec<CredentialName> = if args.all {
        backend.list().await?.into_iter().map(|i| i.name).collect()
    } else {
        args.names
            .iter()
            .map(|n| CredentialName::new(n).map_err(CliError::input))
            .collect::<CliResult<_>>()?
    };
    if names.is_empty() {
        return Err(CliError::usage(format!(
            "no credentials to test in the {}",
            backend.describe()
        ))
        .with_hint("add one with `siteport credential add NAME`"));
    }
    let mut outcomes = Vec::new();
    for name in &names {
        outcomes.extend(test_one(backend.as_ref(), cfg.as_ref(), name).await);
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    if ctx.output.json {
        let rows: Vec<_> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "name": o.name, "server": o.server, "site": o.site, "ok": o.error.is_none(),
                    "error": o.error.as_ref().map(|e| json!({
                        "kind": e.kind, "message": e.message, "hint": e.hint, "exit_code": e.code,
                    })),
                })
            })
            .collect();
        ctx.output.json_line(&json!({ "results": rows }))?;
    } else {
        let mut lines = Vec::new();
        for o in &outcomes {
            let via = o
                .site
                .as_ref()
                .map(|s| format!(" (site {s})"))
                .unwrap_or_default();
            let server = o.server.as_deref().unwrap_or("-");
            match &o.error {
                None => lines.push(format!("ok    {}  {server}{via}: login accepted", o.name)),
                Some(e) => {
                    lines.push(format!("FAIL  {}  {server}{via}: {}", o.name, e.message));
                    if let Some(h) = &e.hint {
                        lines.push(format!("      hint: {h}"));
                    }
                }
            }
        }
        print_line(&lines.join("\n"))?;
    }
    let Some(first) = failed.first().and_then(|o| o.error.as_ref()) else {
        return Ok(());
    };
    Err(CliError {
        code: first.code,
        kind: first.kind,
        message: format!(
            "{} of {} login tests failed: {}",
            failed.len(),
            outcomes.len(),
            failed
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        hint: first.hint.clone(),
    })
}

/// Tests `name` against every distinct server of the sites that use it, or against its own host.
pub(crate) async fn test_one(
    backend: &dyn CredentialBackend,
    cfg: Option<&Config>,
    name: &CredentialName,
) -> Vec<Outcome> {
    let fail = |server: Option<String>, site: Option<String>, e: CliError| Outcome {
        name: name.to_string(),
        server,
        site,
        error: Some(e),
    };
    let cred = match backend.get(name).await {
        Ok(c) => c,
        Err(e) => return vec![fail(None, None, e.into())],
    };
    register_secret(cred.password());
    let sites: Vec<&str> = cfg
        .map(|c| {
            c.sites
                .iter()
                .filter(|s| s.credential_names().contains(name))
                .map(|s| s.name.as_str())
                .collect()
        })
        .unwrap_or_default();

    let mut targets: Vec<(Option<String>, Endpoint)> = Vec::new();
    for site in sites {
        let Some(cfg) = cfg else { break };
        match cfg.resolve_site(site, backend, &process_env).await {
            Ok(r) => {
                let mut o = endpoint(&r);
                // The site may combine several credentials; this test is about this one.
                o.login = Login::new(cred.username(), cred.password().clone());
                // An SFTP credential logs in with its key when it has one.
                if let Some(k) = cred.ssh_key() {
                    crate::logging::register_key(k);
                    if let Some(p) = cred.ssh_key_passphrase() {
                        register_secret(p);
                    }
                    o.login = o
                        .login
                        .with_ssh_key(k.clone(), cred.ssh_key_passphrase().cloned());
                }
                if !targets
                    .iter()
                    .any(|(_, t)| t.server() == o.server() && t.login.username == o.login.username)
                {
                    targets.push((Some(site.to_owned()), o));
                }
            }
            Err(e) => return vec![fail(None, Some(site.to_owned()), e.into())],
        }
    }
    if targets.is_empty() {
        match own_server(&cred) {
            Ok(o) => targets.push((None, o)),
            Err(e) => return vec![fail(None, None, e)],
        }
    }
    let mut out = Vec::new();
    for (site, opts) in targets {
        let server = opts.server();
        let error = match test_login(&opts).await {
            Ok(()) => None,
            Err(e) => Some(login_error(name, &opts, e)),
        };
        out.push(Outcome {
            name: name.to_string(),
            server: Some(server),
            site,
            error,
        });
    }
    out
}

fn own_server(cred: &Credential) -> CliResult<Endpoint> {
    let Some(host) = cred.host() else {
        return Err(CliError::usage(format!(
            "credential '{}' has no host, and no site in the config uses it",
            cred.name()
        ))
        .with_hint(format!(
            "store the host with `siteport credential add {} --host H --force`, or reference the credential from a [[site]]",
            cred.name()
        )));
    };
    let tls = TlsMode::Explicit;
    Ok(Endpoint::new(
        host,
        cred.port().unwrap_or(tls.default_port()),
        Protocol::Ftp(FtpSettings {
            tls,
            ..FtpSettings::default()
        }),
        "",
        Login::new(cred.username(), cred.password().clone()),
    ))
}

fn login_error(name: &CredentialName, opts: &Endpoint, e: siteport_sync::Error) -> CliError {
    let kind = e.kind();
    let (message, hint) = if kind == siteport_sync::ErrorKind::Login {
        (
            format!(
                "{} refused the login of user '{}': {}",
                opts.server(),
                opts.login.username,
                e.detail()
            ),
            Some(format!(
                "replace the password with `siteport credential add {name} --force`"
            )),
        )
    } else {
        (e.to_string(), e.hint().map(str::to_owned))
    };
    // Only a login was tried: a failure of another kind is a connection problem (see
    // `Failure::LoginTest`) and still tells nothing about the password.
    let mut out = CliError::new(Failure::LoginTest(kind), kind.as_str(), message);
    out.hint = hint;
    out
}
