//! `siteport demo`: the whole product in one command, touching nothing of the user's. It
//! starts the embedded FTP server on 127.0.0.1 (random port, temp root, generated password),
//! creates a temporary encrypted credential store holding that password, writes a temporary
//! config, exports the bundled example site, exports again (nothing to send), tests the
//! credential, imports into another directory, checks that every byte came back, and removes
//! everything.

use std::io::Read;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use secrecy::SecretString;
use siteport_creds::backends::file::{FileBackend, InitOptions};
use siteport_creds::{
    BackendSettings, BackendSpec, Credential, CredentialName, StoreMode, open_backend,
};
use siteport_ftpd::EmbeddedServer;
use siteport_sync::Direction;

use crate::commands::credential_test::{self, TestArgs};
use crate::commands::export_import;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::logging::register_secret;
use crate::output::print_line;

/// `examples/site/`, compiled in so that `demo` works from any directory.
static EXAMPLE_SITE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/site");

const USER: &str = "demo";
const CRED: &str = "demo";

/// Runs the demo. Exit 0 only if the imported copy is byte-identical to the example site.
pub async fn run(ctx: &Context) -> CliResult {
    let tmp = tempfile::Builder::new()
        .prefix("siteport-demo")
        .tempdir()
        .map_err(|e| CliError::internal(format!("cannot create a temp directory: {e}")))?;
    let base = tmp.path().to_path_buf();
    let result = demo(ctx, &base).await;
    drop(tmp);
    if result.is_ok() {
        step(ctx, &format!("cleaned up {}", base.display()))?;
        step(ctx, "demo finished: OK")?;
    }
    result
}

fn step(ctx: &Context, text: &str) -> CliResult {
    if ctx.output.json {
        return Ok(());
    }
    print_line(text)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::internal(format!("demo: cannot {what} {}: {e}", path.display()))
}

async fn demo(ctx: &Context, base: &Path) -> CliResult {
    let dirs = ["server-root", "store", "state", "site"];
    for d in dirs {
        make_private_dir(&base.join(d))?;
    }

    // 1. The example site.
    let site_dir = base.join("site");
    write_tree(&EXAMPLE_SITE, &site_dir)?;
    step(
        ctx,
        &format!(
            "1. wrote the example site ({} files) to {}",
            count_files(&EXAMPLE_SITE),
            site_dir.display()
        ),
    )?;

    // 2. The server, with a password nobody has seen.
    let password = random_password()?;
    register_secret(&password);
    let server = EmbeddedServer::start(&base.join("server-root"), USER, password.clone(), None)
        .map_err(|e| {
            CliError::internal(format!("demo: cannot start the embedded FTP server: {e}"))
        })?;
    let port = server.port();
    step(
        ctx,
        &format!(
            "2. started the embedded FTP server on 127.0.0.1:{port} (user '{USER}', a generated password, plain FTP on loopback)"
        ),
    )?;

    store_password(ctx, base, password, port).await?;
    let config = write_config(ctx, base, port)?;
    run_commands(ctx, base, &config).await?;

    let imported = base.join("imported");
    let n = compare_trees(&site_dir, &imported)?;
    step(
        ctx,
        &format!(
            "9. verified: all {n} files in {} are byte-identical to the originals",
            imported.display()
        ),
    )?;
    server.shutdown();
    Ok(())
}

/// 3. A throw-away encrypted store holding the server's password.
async fn store_password(
    ctx: &Context,
    base: &Path,
    password: SecretString,
    port: u16,
) -> CliResult {
    let mut settings = BackendSettings::default();
    settings.file.path = Some(base.join("store/credentials.age"));
    settings.file.identity = Some(base.join("store/identity.txt"));
    FileBackend::init(&settings.file, InitOptions::default(), ctx.prompter())?;
    let spec = BackendSpec::select(Some("file"), None, None)?;
    let backend = open_backend(&spec, &settings, ctx.prompter())?;
    let name = CredentialName::new(CRED).map_err(CliError::input)?;
    let cred = Credential::new(name, USER, password)
        .and_then(|c| c.with_host("127.0.0.1"))
        .and_then(|c| c.with_port(port))
        .map_err(CliError::input)?;
    backend.store(&cred, StoreMode::CreateNew).await?;
    step(
        ctx,
        &format!(
            "3. created a temporary credential store {} and stored credential '{CRED}' in it",
            base.join("store/credentials.age").display()
        ),
    )?;
    Ok(())
}

/// 4. A config that names the credential, never the password.
fn write_config(ctx: &Context, base: &Path, port: u16) -> CliResult<PathBuf> {
    let config = base.join("siteport.toml");
    let text = format!(
        r#"# written by `siteport demo`
[credentials]
backend = "file"
[credentials.file]
path = "store/credentials.age"
identity = "store/identity.txt"

[[site]]
name = "demo"
host = "127.0.0.1"
port = {port}
tls = "none"
credential = "{CRED}"
local = "site"
remote = "/www"

[[site]]
name = "demo-copy"
host = "127.0.0.1"
port = {port}
tls = "none"
credential = "{CRED}"
local = "imported"
remote = "/www"
"#
    );
    std::fs::write(&config, text).map_err(|e| io_err("write", &config, e))?;
    step(
        ctx,
        &format!(
            "4. wrote {} (sites 'demo' and 'demo-copy', both using credential = \"{CRED}\")",
            config.display()
        ),
    )?;
    Ok(config)
}

/// 5–8. The commands a user would run, against the demo's own config and store.
async fn run_commands(ctx: &Context, base: &Path, config: &Path) -> CliResult {
    let sub = Context::new(
        ctx.output,
        // The demo's own store, whatever SITEPORT_CREDENTIAL_BACKEND says.
        Some("file".into()),
        Some(config.to_owned()),
        ctx.verbosity,
        Some(base.join("state")),
    );
    let export = |site: &str| export_import::Request {
        direction: Direction::Export,
        sites: vec![site.to_owned()],
        all: false,
        dry_run: false,
        delete: false,
        jobs: None,
        checksum: false,
        size_only: false,
        lock_wait: None,
        max_delete: None,
        allow_empty: false,
        verify: false,
        local: None,
        filters: Default::default(),
        bwlimit: None,
        stats: None,
        parallel_sites: 1,
        switch: None,
    };

    step(ctx, "5. $ siteport export demo")?;
    export_import::run(&sub, &export("demo")).await?;
    step(
        ctx,
        "6. $ siteport export demo   (again: nothing changed, nothing is sent)",
    )?;
    export_import::run(&sub, &export("demo")).await?;
    step(ctx, "7. $ siteport credential test demo")?;
    credential_test::run(
        &sub,
        TestArgs {
            names: vec![CRED.into()],
            all: false,
        },
    )
    .await?;
    step(ctx, "8. $ siteport import demo-copy")?;
    let mut import = export("demo-copy");
    import.direction = Direction::Import;
    export_import::run(&sub, &import).await?;
    Ok(())
}

fn make_private_dir(p: &Path) -> CliResult {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| io_err("create", p, e))
}

fn write_tree(dir: &Dir<'_>, root: &Path) -> CliResult {
    for f in dir.files() {
        let p = root.join(f.path());
        std::fs::write(&p, f.contents()).map_err(|e| io_err("write", &p, e))?;
    }
    for d in dir.dirs() {
        make_private_dir(&root.join(d.path()))?;
        write_tree(d, root)?;
    }
    Ok(())
}

fn count_files(dir: &Dir<'_>) -> usize {
    dir.files().count() + dir.dirs().map(count_files).sum::<usize>()
}

/// 24 random bytes from the kernel, hex: the server's password for this run only.
fn random_password() -> CliResult<SecretString> {
    let path = Path::new("/dev/urandom");
    let mut bytes = zeroize::Zeroizing::new([0u8; 24]);
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(bytes.as_mut()))
        .map_err(|e| io_err("read", path, e))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(SecretString::from(hex))
}

/// Compares every file under `a` with the same path under `b` (and the other way round);
/// returns the number of files.
fn compare_trees(a: &Path, b: &Path) -> CliResult<usize> {
    let left = list_files(a, a)?;
    let right = list_files(b, b)?;
    if left != right {
        let missing: Vec<String> = left
            .iter()
            .filter(|p| !right.contains(p))
            .map(|p| p.display().to_string())
            .collect();
        return Err(CliError::internal(format!(
            "demo: the imported tree differs from the original (missing: {})",
            missing.join(", ")
        )));
    }
    for rel in &left {
        let (x, y) = (a.join(rel), b.join(rel));
        let bx = std::fs::read(&x).map_err(|e| io_err("read", &x, e))?;
        let by = std::fs::read(&y).map_err(|e| io_err("read", &y, e))?;
        if bx != by {
            return Err(CliError::internal(format!(
                "demo: {} differs from {}",
                y.display(),
                x.display()
            )));
        }
    }
    Ok(left.len())
}

fn list_files(root: &Path, dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| io_err("list", dir, e))?;
        let p = e.path();
        let ft = e.file_type().map_err(|e| io_err("stat", &p, e))?;
        if ft.is_dir() {
            out.extend(list_files(root, &p)?);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_example_site_is_embedded() {
        assert!(count_files(&EXAMPLE_SITE) >= 5);
        assert!(EXAMPLE_SITE.get_file("index.html").is_some());
    }

    #[test]
    fn random_passwords_differ() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.expose_secret().len(), 48);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
