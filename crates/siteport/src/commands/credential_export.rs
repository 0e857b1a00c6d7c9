//! `siteport credential export`: writes credentials from any backend in the forms containers
//! read them: an env file (`SITEPORT_CRED_*`, for Compose `env_file`), a Docker secrets
//! directory (the `dir` backend layout, with the matching `_FILE` variables) or a Kubernetes
//! `Secret` manifest. Everything written is private (files 0600, directories 0700), and secrets
//! reach stdout only when asked for with `-o -`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, ValueEnum};
use secrecy::ExposeSecret;
use serde_json::json;
use siteport_creds::backends::dir::DEFAULT_ROOT;
use siteport_creds::backends::env::{EnvVarNames, env_var_names};
use siteport_creds::{Credential, CredentialBackend, CredentialName};
use zeroize::Zeroizing;

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::logging::register_secret;

/// Default `metadata.name` of the exported Kubernetes Secret.
pub const DEFAULT_SECRET_NAME: &str = "siteport-credentials";

/// Name of the file, inside an exported secrets directory, that lists the `_FILE` variables
/// pointing at the directory's files once mounted. It is a plain file at the root, so the `dir`
/// backend (which only reads sub-directories) ignores it.
pub const FILE_VARS_NAME: &str = "file-vars.env";

/// The forms `credential export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `SITEPORT_CRED_<NAME>_USERNAME=…` lines (Compose `env_file`, `set -a; . FILE`).
    EnvFile,
    /// A directory `<name>/{username,password,host,port}`: the `dir` backend layout, mountable
    /// as Docker secrets with `_FILE` variables.
    DockerSecrets,
    /// A Kubernetes `Secret` manifest whose keys are the env backend's variable names.
    K8sSecret,
}

/// `siteport credential export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output form.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Credentials to export [default: all of them].
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Where to write: a file (env-file, k8s-secret), a directory (docker-secrets), or `-` for
    /// stdout (env-file, k8s-secret only).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
    /// Replace an existing output file, or files in an existing output directory.
    #[arg(long)]
    pub force: bool,
    /// `metadata.name` of the Kubernetes Secret.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SECRET_NAME)]
    pub secret_name: String,
    /// `metadata.namespace` of the Kubernetes Secret [default: none, i.e. kubectl's current one].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Where the exported secrets directory will be mounted in the container; used for the
    /// `_FILE` variables written to `file-vars.env`.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
    pub mount_root: PathBuf,
}

/// Runs `credential export`.
pub async fn run(ctx: &Context, args: ExportArgs) -> CliResult {
    let stdout = args.output.as_os_str() == "-";
    if stdout && args.format == ExportFormat::DockerSecrets {
        return Err(CliError::usage(
            "--format docker-secrets writes a directory and cannot go to stdout",
        )
        .with_hint(
            "give a directory: `siteport credential export --format docker-secrets -o ./secrets`",
        ));
    }
    if args.format == ExportFormat::K8sSecret {
        check_k8s_name("--secret-name", &args.secret_name, 253)?;
        if let Some(ns) = &args.namespace {
            check_k8s_name("--namespace", ns, 63)?;
        }
    }
    let backend = ctx.backend()?;
    let creds = collect(backend.as_ref(), &args.names).await?;
    let where_ = backend.describe();
    tracing::info!(count = creds.len(), backend = %where_, format = ?args.format, "exporting credentials");

    match args.format {
        ExportFormat::EnvFile => {
            // An env file holds one variable per line; a key is many lines.
            if let Some(c) = creds.iter().find(|c| c.ssh_key().is_some()) {
                return Err(CliError::usage(format!(
                    "credential '{}' holds an SSH key, which an env file cannot carry \
                     (one variable per line)",
                    c.name()
                ))
                .with_hint(
                    "use --format docker-secrets (files, read through the _FILE variables) \
                     or --format k8s-secret",
                ));
            }
            for c in &creds {
                if compose_unsafe(c) {
                    tracing::warn!(
                        credential = %c.name(),
                        "a value contains a single quote, which Docker Compose's env_file cannot \
                         hold; use --format docker-secrets for this credential"
                    );
                }
            }
            emit(&args, &render_env_file(&creds))?;
        }
        ExportFormat::K8sSecret => {
            emit(
                &args,
                &render_k8s_secret(&creds, &args.secret_name, args.namespace.as_deref()),
            )?;
        }
        ExportFormat::DockerSecrets => {
            write_secrets_dir(&args.output, &creds, &args.mount_root, args.force)?;
        }
    }
    if stdout {
        // The data went to stdout; the summary would corrupt it.
        return Ok(());
    }
    let names: Vec<&str> = creds.iter().map(|c| c.name().as_str()).collect();
    ctx.output.result(
        &format!(
            "exported {} credential(s) from {where_} to {} ({})",
            creds.len(),
            args.output.display(),
            format_name(args.format)
        ),
        &json!({
            "exported": names,
            "backend": where_,
            "format": format_name(args.format),
            "output": args.output,
        }),
    )
}

fn format_name(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::EnvFile => "env-file",
        ExportFormat::DockerSecrets => "docker-secrets",
        ExportFormat::K8sSecret => "k8s-secret",
    }
}

/// The named credentials (every one when `names` is empty), sorted by name, each registered
/// with the log redactor before anything else happens to it.
async fn collect(backend: &dyn CredentialBackend, names: &[String]) -> CliResult<Vec<Credential>> {
    let mut wanted: Vec<CredentialName> = if names.is_empty() {
        backend.list().await?.into_iter().map(|i| i.name).collect()
    } else {
        names
            .iter()
            .map(|n| {
                CredentialName::new(n).map_err(|e| {
                    CliError::input(e)
                        .with_hint("names are 1-64 characters of a-z, 0-9, '.', '_' and '-'")
                })
            })
            .collect::<CliResult<_>>()?
    };
    wanted.sort();
    wanted.dedup();
    let mut out = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let cred = backend.get(name).await?;
        register_secret(cred.password());
        if let Some(k) = cred.ssh_key() {
            crate::logging::register_key(k);
        }
        if let Some(p) = cred.ssh_key_passphrase() {
            register_secret(p);
        }
        out.push(cred);
    }
    check_distinct_stems(&out)?;
    Ok(out)
}

/// `a-b` and `a.b` both map to `SITEPORT_CRED_A_B_*`: exporting both would silently keep one.
fn check_distinct_stems(creds: &[Credential]) -> CliResult {
    let mut seen: Vec<(String, &CredentialName)> = Vec::new();
    for c in creds {
        let stem = env_var_names(c.name()).stem;
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == stem) {
            return Err(CliError::usage(format!(
                "credentials '{other}' and '{}' map to the same variables SITEPORT_CRED_{stem}_*",
                c.name()
            ))
            .with_hint("export them separately, or rename one with `siteport credential add NEW` + `siteport credential remove OLD`"));
        }
        seen.push((stem, c.name()));
    }
    Ok(())
}

/// The (field file name, variable name, value) triples of one credential, in a fixed order.
fn fields(c: &Credential) -> Vec<(&'static str, String, Zeroizing<String>)> {
    let v: EnvVarNames = env_var_names(c.name());
    let mut out = vec![(
        "username",
        v.username,
        Zeroizing::new(c.username().to_owned()),
    )];
    // A key-only (SFTP) credential has an empty password: no field for it.
    if !c.password().expose_secret().is_empty() {
        out.push((
            "password",
            v.password,
            Zeroizing::new(c.password().expose_secret().to_owned()),
        ));
    }
    if let Some(k) = c.ssh_key() {
        out.push((
            "ssh_key",
            v.ssh_key,
            Zeroizing::new(k.expose_secret().to_owned()),
        ));
    }
    if let Some(p) = c.ssh_key_passphrase() {
        out.push((
            "ssh_key_passphrase",
            v.ssh_key_passphrase,
            Zeroizing::new(p.expose_secret().to_owned()),
        ));
    }
    if let Some(h) = c.host() {
        out.push(("host", v.host, Zeroizing::new(h.to_owned())));
    }
    if let Some(p) = c.port() {
        out.push(("port", v.port, Zeroizing::new(p.to_string())));
    }
    out
}

fn compose_unsafe(c: &Credential) -> bool {
    fields(c).iter().any(|(_, _, v)| v.contains('\''))
}

/// Characters that mean the same unquoted to POSIX sh, Compose's `env_file` and
/// `docker run --env-file` (which takes the text after `=` verbatim).
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+,./:_-^~".contains(&b))
}

/// A value as `sh` and Compose read it back: bare when plain, else single-quoted (`'` itself
/// as `'\''`, which only sh understands; see [`compose_unsafe`]).
fn quote(value: &str) -> String {
    if is_plain(value) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The env-file text: one `VAR=value` line per field. Values never contain CR/LF (credential
/// validation rejects control characters), so a line is always one variable.
pub fn render_env_file(creds: &[Credential]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::from(
        "# siteport credentials for the env backend (SITEPORT_CREDENTIAL_BACKEND=env).\n\
         # Written by `siteport credential export --format env-file`. Holds passwords: keep it\n\
         # private (0600), out of version control, and delete it once loaded.\n",
    ));
    for c in creds {
        for (_, var, value) in fields(c) {
            s.push_str(&var);
            s.push('=');
            s.push_str(&Zeroizing::new(quote(&value)));
            s.push('\n');
        }
    }
    s
}

/// The Kubernetes `Secret` manifest: keys are the env backend's variable names (so `envFrom`
/// works as is), values base64. A comment lists the `items` that mount it for the `dir` backend.
pub fn render_k8s_secret(
    creds: &[Credential],
    name: &str,
    namespace: Option<&str>,
) -> Zeroizing<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = Zeroizing::new(String::from(
        "# Written by `siteport credential export --format k8s-secret`. Holds passwords:\n\
         # `kubectl apply -f` it, then delete it; never commit it.\n\
         # Use it with `envFrom: [{secretRef: {name: ...}}]` (env backend), or mount it for the\n\
         # dir backend with these volume items:\n",
    ));
    for c in creds {
        for (file, var, _) in fields(c) {
            s.push_str(&format!(
                "#   - {{key: {var}, path: {}/{file}}}\n",
                c.name()
            ));
        }
    }
    s.push_str("apiVersion: v1\nkind: Secret\nmetadata:\n");
    s.push_str(&format!("  name: {name}\n"));
    if let Some(ns) = namespace {
        s.push_str(&format!("  namespace: {ns}\n"));
    }
    s.push_str("  labels:\n    app.kubernetes.io/name: siteport\ntype: Opaque\n");
    if creds.is_empty() {
        s.push_str("data: {}\n");
        return s;
    }
    s.push_str("data:\n");
    for c in creds {
        for (_, var, value) in fields(c) {
            let enc = Zeroizing::new(b64.encode(value.as_bytes()));
            s.push_str(&format!("  {var}: {}\n", enc.as_str()));
        }
    }
    s
}

/// Kubernetes object names are DNS subdomains (namespaces DNS labels); checking them here
/// also keeps the hand-written YAML free of anything that would need quoting.
fn check_k8s_name(flag: &str, value: &str, max: usize) -> CliResult {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric()
        && (max == 253 || !value.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{flag} '{}' is not a valid Kubernetes name",
            value.escape_default()
        ))
        .with_hint(format!(
            "use at most {max} characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
        )))
    }
}

/// Writes `text` to stdout (`-o -`) or atomically to a new 0600 file.
fn emit(args: &ExportArgs, text: &str) -> CliResult {
    if args.output.as_os_str() == "-" {
        return crate::output::stdout_bytes(text.as_bytes());
    }
    if !args.force && fs::symlink_metadata(&args.output).is_ok() {
        return Err(exists(&args.output));
    }
    write_private(&args.output, text.as_bytes())
}

fn exists(path: &Path) -> CliError {
    CliError::usage(format!("{} already exists", path.display())).with_hint(format!(
        "add --force to replace it, or choose another path with -o (e.g. {}.new)",
        path.display()
    ))
}

fn io_err(action: &str, path: &Path, e: &std::io::Error) -> CliError {
    CliError::local_write(format!("cannot {action} {}: {e}", path.display())).with_hint(format!(
        "check that the directory of {} exists and is writable, or choose another path with -o",
        path.display()
    ))
}

/// Temp file (created 0600 by `tempfile`) in the target's directory, fsync, rename: a reader
/// never sees a half-written secret file, and no other user can ever open it.
fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    let dir = siteport_fsguard::parent_dir(path).to_path_buf();
    // Said plainly, rather than as the temporary file's creation failing under a random name.
    let missing = match fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
        Ok(m) if !m.is_dir() => Some("is not a directory"),
        _ => None,
    };
    if let Some(why) = missing {
        return Err(CliError::local_write(format!(
            "cannot write {}: {} {why}",
            path.display(),
            dir.display()
        ))
        .with_hint(if why == "does not exist" {
            format!(
                "create it first (`mkdir -p {}`), or choose another path with -o",
                dir.display()
            )
        } else {
            "choose another path with -o".to_owned()
        }));
    }
    // Another user who can write there could rename the secrets file away or swap it.
    siteport_fsguard::check_dir("export directory", &dir, false)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".siteport-export-")
        .tempfile_in(&dir)
        .map_err(|e| io_err("create a file in", &dir, &e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err("set permissions on a file in", &dir, &e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_err("write", path, &e))?;
    tmp.persist(path)
        .map_err(|e| io_err("write", path, &e.error))?;
    Ok(())
}

/// Creates `dir` (0700) or, when it exists, checks that it may be written into.
fn private_dir(dir: &Path) -> CliResult {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("set permissions on", dir, &e)),
        Ok(_) => Err(
            CliError::usage(format!("{} exists and is not a directory", dir.display())).with_hint(
                "--format docker-secrets writes a directory; choose another path with -o",
            ),
        ),
        Err(_) => fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err("create directory", dir, &e)),
    }
}

/// The Docker secrets directory: `<out>/<name>/{username,password[,host,port]}` (the `dir`
/// backend layout) plus `file-vars.env` with the `_FILE` variables for `mount_root`.
fn write_secrets_dir(
    out: &Path,
    creds: &[Credential],
    mount_root: &Path,
    force: bool,
) -> CliResult {
    let non_empty = fs::read_dir(out).is_ok_and(|mut rd| rd.next().is_some());
    if !force && non_empty {
        return Err(CliError::usage(format!(
            "{} already exists and is not empty",
            out.display()
        ))
        .with_hint(
            "add --force to overwrite the credentials in it, or choose an empty or new directory with -o",
        ));
    }
    private_dir(out)?;
    let mut vars = String::from(
        "# The `_FILE` variables for the env backend when this directory is mounted at the\n\
         # path below (or use the dir backend: SITEPORT_CREDENTIAL_BACKEND=dir).\n",
    );
    for c in creds {
        let sub = out.join(c.name().as_str());
        private_dir(&sub)?;
        let written = fields(c);
        for (file, var, value) in &written {
            write_private(&sub.join(file), value.as_bytes())?;
            let target = mount_root.join(c.name().as_str()).join(file);
            vars.push_str(&format!(
                "{}={}\n",
                EnvVarNames::file_form(var),
                target.display()
            ));
        }
        // A field the credential no longer has must not survive from an earlier export.
        for stale in ["password", "host", "port", "ssh_key", "ssh_key_passphrase"] {
            if !written.iter().any(|(f, _, _)| *f == stale) {
                match fs::remove_file(sub.join(stale)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &sub.join(stale), &e)),
                }
            }
        }
    }
    write_private(&out.join(FILE_VARS_NAME), vars.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys_go_into_secrets_but_never_a_key_only_password() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1-export\n-----END OPENSSH PRIVATE KEY-----\n";
        let c = Credential::with_ssh_key_only(
            CredentialName::new("web").unwrap(),
            "deploy",
            SecretString::from(key),
            Some(SecretString::from("pp-9")),
        )
        .unwrap();
        let files: Vec<&str> = fields(&c).iter().map(|(f, _, _)| *f).collect();
        assert_eq!(files, ["username", "ssh_key", "ssh_key_passphrase"]);
        let k8s = render_k8s_secret(std::slice::from_ref(&c), "s", None);
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert!(
            k8s.contains(&format!("SITEPORT_CRED_WEB_SSH_KEY: {b64}")),
            "{}",
            k8s.as_str()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("secrets");
        write_secrets_dir(&out, &[c], Path::new("/run/secrets"), false).unwrap();
        assert_eq!(fs::read_to_string(out.join("web/ssh_key")).unwrap(), key);
        assert!(!out.join("web/password").exists());
        let vars = fs::read_to_string(out.join(FILE_VARS_NAME)).unwrap();
        assert!(
            vars.contains("SITEPORT_CRED_WEB_SSH_KEY_FILE=/run/secrets/web/ssh_key"),
            "{vars}"
        );
    }
    use secrecy::SecretString;

    fn cred(name: &str, user: &str, pw: &str) -> Credential {
        Credential::new(
            CredentialName::new(name).unwrap(),
            user.to_owned(),
            SecretString::from(pw),
        )
        .unwrap()
    }

    #[test]
    fn env_file_quotes_only_what_needs_it() {
        let c = cred("acme-prod", "deploy", "p w$'x")
            .with_port(2121)
            .unwrap();
        let text = render_env_file(&[c]);
        assert!(
            text.contains("SITEPORT_CRED_ACME_PROD_USERNAME=deploy\n"),
            "{}",
            *text
        );
        assert!(
            text.contains("SITEPORT_CRED_ACME_PROD_PASSWORD='p w$'\\''x'\n"),
            "{}",
            *text
        );
        assert!(
            text.contains("SITEPORT_CRED_ACME_PROD_PORT=2121\n"),
            "{}",
            *text
        );
        assert!(!text.contains("_HOST"), "{}", *text);
    }

    #[test]
    fn k8s_secret_is_base64_with_env_keys() {
        let c = cred("a.b", "u", "pw").with_host("ftp.example.com").unwrap();
        let text = render_k8s_secret(&[c], "s", Some("web"));
        assert!(text.contains("  name: s\n  namespace: web\n"), "{}", *text);
        assert!(
            text.contains("  SITEPORT_CRED_A_B_PASSWORD: cHc=\n"),
            "{}",
            *text
        );
        assert!(
            text.contains("  SITEPORT_CRED_A_B_USERNAME: dQ==\n"),
            "{}",
            *text
        );
        assert!(
            text.contains("{key: SITEPORT_CRED_A_B_HOST, path: a.b/host}"),
            "{}",
            *text
        );
        let empty = render_k8s_secret(&[], "s", None);
        assert!(empty.contains("data: {}\n") && !empty.contains("namespace"));
    }

    #[test]
    fn k8s_names_are_checked() {
        assert!(check_k8s_name("--secret-name", "siteport-credentials", 253).is_ok());
        assert!(check_k8s_name("--secret-name", "a.b", 253).is_ok());
        for bad in ["", "A", "-a", "a-", "a b", "a\nkind: Pod", "a:b"] {
            assert!(
                check_k8s_name("--secret-name", bad, 253).is_err(),
                "{bad:?}"
            );
        }
        assert!(check_k8s_name("--namespace", "a.b", 63).is_err());
    }

    #[test]
    fn colliding_stems_are_refused() {
        let e = check_distinct_stems(&[cred("a-b", "u", "p"), cred("a.b", "u", "p")]).unwrap_err();
        assert!(e.message.contains("SITEPORT_CRED_A_B_"), "{}", e.message);
    }
}
