//! `siteport config check`: parse and validate the config, then resolve every reference of
//! every site through the selected backend, printing what each site resolves to, never a secret.

use clap::Subcommand;
use serde_json::json;
use siteport_creds::reference::process_env;

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::logging::register_secret;
use crate::output::print_line;

/// `siteport config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and resolve every reference of every site (credentials included),
    /// without printing a secret.
    Check,
}

/// Runs `config check`. Exit 0 when every site resolves; otherwise every failing site is
/// reported and the exit code is the first failure's (2 config, 3 credential).
pub async fn run(ctx: &Context) -> CliResult {
    let cfg = ctx.config()?;
    let backend = ctx.backend()?;
    let mut rows = Vec::new();
    let mut failures: Vec<CliError> = Vec::new();
    let mut lines = vec![format!(
        "config {}: syntax ok, {} site(s), credentials from the {}",
        cfg.path.display(),
        cfg.sites.len(),
        backend.describe()
    )];
    for (name, res) in cfg.resolve_all(backend.as_ref(), &process_env).await {
        // What the run checks on disk too: a readable ca_file, a local directory.
        let res = res.and_then(|site| cfg.check_files(&site, &site.local, false).map(|()| site));
        match res {
            Ok(site) => {
                register_secret(&site.password);
                let cred = site
                    .credential
                    .as_ref()
                    .map(|c| format!(" credential={c}"))
                    .unwrap_or_default();
                let sftp = site.protocol == crate::config::SiteProtocol::Sftp;
                // An SFTP site has no TLS: say how its server is checked instead.
                let protection = if sftp {
                    format!(
                        "sftp host_key={}",
                        if site.insecure_host_key {
                            "any (insecure)"
                        } else if site.host_key.is_some() {
                            "pinned"
                        } else {
                            "known_hosts"
                        }
                    )
                } else {
                    format!("tls={}", site.tls)
                };
                lines.push(format!(
                    "ok    {name}: {}@{}:{} {protection}{cred} local={} remote={}",
                    site.username,
                    site.host,
                    site.port,
                    site.local.display(),
                    site.remote
                ));
                if !sftp && site.tls == crate::config::TlsMode::None {
                    lines.push(format!(
                        "      warning: site '{name}' uses tls = \"none\" (password sent in clear text)"
                    ));
                }
                rows.push(json!({
                    "site": name, "ok": true, "host": site.host, "port": site.port,
                    "protocol": site.protocol.as_str(),
                    "tls": (!sftp).then(|| site.tls.as_str()), "username": site.username,
                    "credential": site.credential.as_ref().map(|c| c.to_string()),
                    "local": site.local, "remote": site.remote,
                }));
            }
            Err(e) => {
                let e = CliError::from(e);
                lines.push(format!("FAIL  {name}: {}", e.message));
                if let Some(h) = &e.hint {
                    lines.push(format!("      hint: {h}"));
                }
                rows.push(json!({
                    "site": name, "ok": false,
                    "error": {"kind": e.kind, "message": e.message, "hint": e.hint, "exit_code": e.code},
                }));
                failures.push(e);
            }
        }
    }
    if ctx.output.json {
        ctx.output.json_line(&json!({
            "config": cfg.path,
            "backend": backend.describe(),
            "ok": failures.is_empty(),
            "sites": rows,
        }))?;
    } else {
        print_line(&lines.join("\n"))?;
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        n => Err(CliError {
            code: failures[0].code,
            kind: failures[0].kind,
            message: format!("{n} sites do not resolve (see above)"),
            hint: failures[0].hint.clone(),
        }),
    }
}
