//! The GitHub Action and the CI examples: `action.yml`, the example workflow and the GitLab CI
//! file validated with check-jsonschema's vendored schemas (from `scripts/install-validators`),
//! docs/ci.md showing the example files as they are, and the action's entrypoint run as the
//! runner runs it (`INPUT_*` variables, a `GITHUB_OUTPUT` file, the password only in the
//! environment) against vsftpd over FTPS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Sandbox, assert_code, bin, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_jsonschema() -> PathBuf {
    let tools = std::env::var_os("SITEPORT_TOOLS").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/siteport-tools"),
        PathBuf::from,
    );
    let p = tools.join("venv/bin/check-jsonschema");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/install-validators (scripts/test does)",
        p.display()
    );
    p
}

fn validate(schema: &str, file: &Path) -> Output {
    Command::new(check_jsonschema())
        .args(["--builtin-schema", schema])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn action_and_ci_examples_match_their_schemas() {
    let mut failures = Vec::new();
    for (schema, rel) in [
        ("vendor.github-actions", "action.yml"),
        ("vendor.github-workflows", "examples/ci/github-deploy.yml"),
        ("vendor.gitlab-ci", "examples/ci/gitlab-ci.yml"),
    ] {
        let path = repo().join(rel);
        let o = validate(schema, &path);
        if !o.status.success() {
            failures.push(format!("{rel} ({schema}): {}{}", stdout(&o), stderr(&o)));
        }
        // The validator really rejects a broken file of each kind.
        let text = std::fs::read_to_string(&path).unwrap();
        let broken = match rel {
            "action.yml" => text.replace("using: docker", "using: dockr"),
            "examples/ci/github-deploy.yml" => text.replace("runs-on:", "runs_on:"),
            _ => text.replace("stage: deploy", "stage: [deploy, 1]"),
        };
        assert_ne!(broken, text, "{rel}: nothing to break");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join(path.file_name().unwrap());
        std::fs::write(&bad, broken).unwrap();
        if validate(schema, &bad).status.success() {
            failures.push(format!("{rel}: a broken copy passed {schema}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn action_yml_runs_the_entrypoint_with_every_input() {
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    assert!(text.contains("using: docker"), "{text}");
    // GitHub builds the image with the Dockerfile's directory as the context: only a root
    // Dockerfile sees the sources.
    assert!(text.contains("image: Dockerfile\n"), "{text}");
    assert!(repo().join("Dockerfile").is_file());
    assert!(text.contains("args:\n    - github-action"), "{text}");
    // The inputs action.yml declares are exactly those the entrypoint reads.
    let inputs = text.split("\ninputs:\n").nth(1).unwrap();
    let inputs = inputs.split("\noutputs:\n").next().unwrap();
    let declared: Vec<&str> = inputs
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert_eq!(declared, siteport::commands::ci_action::INPUTS);
    for out in ["files-sent:", "bytes-sent:", "files-deleted:", "exit-code:"] {
        assert!(text.contains(out), "action.yml lacks output {out}");
    }
    // No input carries a password: it comes from the environment only.
    assert!(!inputs.to_lowercase().contains("password"), "{inputs}");
}

#[test]
fn docs_show_the_example_files_as_they_are() {
    let doc = std::fs::read_to_string(repo().join("docs/ci.md")).unwrap();
    for rel in ["examples/ci/github-deploy.yml", "examples/ci/gitlab-ci.yml"] {
        let text = std::fs::read_to_string(repo().join(rel)).unwrap();
        assert!(
            doc.contains(&text),
            "docs/ci.md does not show {rel} as it is"
        );
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("## Deploying from CI") && readme.contains("docs/ci.md"));
}

/// The entrypoint as the runner runs it: the image's entrypoint (`siteport`) with action.yml's
/// args, the inputs as `INPUT_*`, the secret in the step's env, outputs to `GITHUB_OUTPUT`.
fn run_action(
    sb: &Sandbox,
    server: &FtpServer,
    password: &str,
    inputs: &[(&str, &str)],
) -> (Output, String) {
    let out_file = sb.path("github_output");
    let _ = std::fs::remove_file(&out_file);
    let mut c = Command::new(bin());
    c.env_clear()
        .envs(sb.envs())
        .env("SITEPORT_CREDENTIAL_BACKEND", "env")
        .env("SITEPORT_CRED_WEB_USERNAME", &server.user)
        .env("SITEPORT_CRED_WEB_PASSWORD", password)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out_file)
        .current_dir(sb.workdir())
        .arg("github-action");
    for (k, v) in inputs {
        c.env(format!("INPUT_{}", k.to_uppercase()), v);
    }
    let o = c.output().unwrap();
    let outputs = std::fs::read_to_string(&out_file).unwrap_or_default();
    (o, outputs)
}

#[test]
fn the_entrypoint_deploys_with_the_password_only_in_its_env() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let password = server.password.expose_secret().to_owned();
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"explicit\"\nca_file = \"{}\"\n\
             credential = \"web\"\nlocal = \"public\"\nremote = \"/htdocs\"\n",
            server.port,
            server.ca_path().unwrap().display()
        ),
    )
    .unwrap();
    let public = sb.workdir().join("public");
    std::fs::create_dir_all(public.join("css")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>hi</h1>\n").unwrap(); // 12 bytes
    std::fs::write(public.join("css/site.css"), "body{}\n").unwrap(); // 7 bytes
    let inputs = [
        ("site", "web"),
        ("config", "siteport.toml"),
        ("dry-run", "false"),
        ("verify", "true"),
        ("delete", "false"),
        ("args", "--lock-wait 1m --jobs 2"),
    ];
    let (o, outputs) = run_action(&sb, &server, &password, &inputs);
    assert_code(&o, 0);
    assert_eq!(
        outputs,
        "files-sent=2\nbytes-sent=19\nfiles-deleted=0\nexit-code=0\n",
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("siteport: 2 files sent (19 B), 0 deleted"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read(server.root().join("htdocs/css/site.css")).unwrap(),
        b"body{}\n"
    );
    let mut seen = vec![stdout(&o), stderr(&o), outputs];

    // A dry run after a deletion reports what it would do and changes nothing.
    std::fs::remove_file(public.join("index.html")).unwrap();
    let dry = [("site", "web"), ("dry-run", "true"), ("delete", "true")];
    let (o, outputs) = run_action(&sb, &server, &password, &dry);
    assert_code(&o, 0);
    assert_eq!(
        outputs,
        "files-sent=0\nbytes-sent=0\nfiles-deleted=1\nexit-code=0\n"
    );
    assert!(server.root().join("htdocs/index.html").exists());
    seen.extend([stdout(&o), stderr(&o), outputs]);

    // A refused login fails the step with siteport's code, still without the password.
    let wrong = "wrong-password-for-the-action-3";
    let (o, outputs) = run_action(&sb, &server, wrong, &inputs);
    assert_code(&o, 4);
    assert!(outputs.ends_with("exit-code=4\n"), "{outputs}");
    seen.extend([stdout(&o), stderr(&o), outputs]);

    for text in &seen {
        assert!(!text.contains(&password), "the password leaked: {text}");
        assert!(!text.contains(wrong), "the wrong password leaked: {text}");
    }
}
