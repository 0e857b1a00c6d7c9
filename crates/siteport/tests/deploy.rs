//! The container files under deploy/ and examples/, checked for real: the Compose file against
//! the Compose spec schema (check-jsonschema), every Kubernetes manifest (and a Secret that
//! `credential export` writes) with `kubernetes-validate --strict`, the Dockerfile against
//! scripts/test, and every example config through the config loader. The validators come
//! from `scripts/install-validators` (run by scripts/test); a missing one fails these tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("SITEPORT_TOOLS").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/siteport-tools"),
        PathBuf::from,
    );
    let p = tools.join("venv/bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/install-validators (scripts/test does)",
        p.display()
    );
    p
}

#[track_caller]
fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn kubernetes_validate(file: &Path) -> std::process::Output {
    Command::new(tool("kubernetes-validate"))
        .arg("--strict")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn compose_file_matches_the_compose_spec() {
    let compose = repo().join("deploy/docker/compose.yaml");
    let check = || {
        let mut c = Command::new(tool("check-jsonschema"));
        c.args(["--builtin-schema", "vendor.compose-spec"]);
        c
    };
    run_ok(check().arg(&compose));

    // The validator really rejects a wrong file (a typo of a service key).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&bad, text.replace("env_file:", "envfile:")).unwrap();
    let o = check().arg(&bad).output().unwrap();
    assert!(
        !o.status.success(),
        "a broken compose file passed: {}",
        stdout(&o)
    );

    // What the file promises: env_file + _FILE secrets, and a file store on a named volume.
    assert!(text.contains("env_file:") && text.contains("_PASSWORD_FILE: /run/secrets/"));
    assert!(text.contains("siteport-store:/var/lib/siteport"));
    assert!(text.contains("read_only: true"));
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "configmap.yaml",
        "cronjob-dir.yaml",
        "cronjob.yaml",
        "secret.yaml",
        "vault-agent.yaml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for f in &files {
        let o = kubernetes_validate(f);
        assert!(
            o.status.success(),
            "{} failed validation:\n{}{}",
            f.display(),
            stdout(&o),
            stderr(&o)
        );
        let text = std::fs::read_to_string(f).unwrap();
        if text.contains("kind: CronJob") {
            for must in [
                "runAsNonRoot: true",
                "readOnlyRootFilesystem: true",
                "allowPrivilegeEscalation: false",
                "siteport-config",
            ] {
                assert!(text.contains(must), "{} lacks {must}", f.display());
            }
        }
    }
    let cron = std::fs::read_to_string(dir.join("cronjob.yaml")).unwrap();
    assert!(cron.contains("secretKeyRef:") && cron.contains(r#"args: ["export", "--all"]"#));
    let cron_dir = std::fs::read_to_string(dir.join("cronjob-dir.yaml")).unwrap();
    assert!(cron_dir.contains("path: acme/password") && cron_dir.contains("value: dir"));

    // A wrong field is caught: the validator is strict.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        cron.replace("readOnlyRootFilesystem", "readOnlyRootFS"),
    )
    .unwrap();
    assert!(!kubernetes_validate(&bad).status.success());
}

#[test]
fn exported_k8s_secret_validates() {
    let sb = Sandbox::new();
    let out = sb.path("secret.yaml");
    for (name, pw) in [("acme", "pw-1"), ("shop.eu", "p w'\"$2")] {
        let o = sb.run(
            &[
                "--credential-backend",
                "env",
                "credential",
                "export",
                "--format",
                "k8s-secret",
                "--namespace",
                "web",
                "--force",
                "-o",
                out.to_str().unwrap(),
            ],
            "",
            &[
                (
                    &format!(
                        "SITEPORT_CRED_{}_USERNAME",
                        name.replace('.', "_").to_uppercase()
                    ),
                    "u",
                ),
                (
                    &format!(
                        "SITEPORT_CRED_{}_PASSWORD",
                        name.replace('.', "_").to_uppercase()
                    ),
                    pw,
                ),
            ],
        );
        assert_code(&o, 0);
        let v = kubernetes_validate(&out);
        assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    }
}

/// The `cargo` command lines of a file: `RUN cargo …` in the Dockerfile, `cargo …` lines
/// in scripts/test.
fn cargo_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches("RUN ").trim())
        .filter(|l| l.starts_with("cargo "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn dockerfile_builds_what_the_tests_run_as_a_non_root_user() {
    let dockerfile = std::fs::read_to_string(repo().join("deploy/docker/Dockerfile")).unwrap();
    let script = std::fs::read_to_string(repo().join("scripts/test")).unwrap();
    let built = cargo_lines(&dockerfile);
    assert!(!built.is_empty(), "no cargo command in the Dockerfile");
    let tested = cargo_lines(&script);
    for c in &built {
        assert!(
            tested.contains(c),
            "the Dockerfile runs `{c}` but scripts/test does not (it runs {tested:?}): the \
             container tests would not test what the image ships"
        );
    }

    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert!(stages.len() >= 2, "not multi-stage");
    let last = stages.last().unwrap();
    let user = last
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the final stage sets no USER");
    let uid = user.split(':').next().unwrap().trim();
    assert!(
        uid != "0" && uid != "root" && !uid.is_empty(),
        "final USER is {user}"
    );
    assert!(last.contains(r#"ENTRYPOINT ["siteport"]"#), "{last}");
}

/// The GitHub Action's image (root `Dockerfile`): the same build as the tested one, and a
/// final stage without USER, because GitHub runs Docker actions as root (its workspace and
/// `$GITHUB_OUTPUT` belong to the runner's user).
#[test]
fn action_dockerfile_builds_what_the_tests_run_as_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let script = std::fs::read_to_string(repo().join("scripts/test")).unwrap();
    let built = cargo_lines(&dockerfile);
    assert!(!built.is_empty(), "no cargo command in the root Dockerfile");
    let tested = cargo_lines(&script);
    for c in &built {
        assert!(
            tested.contains(c),
            "the root Dockerfile runs `{c}`, scripts/test {tested:?}"
        );
    }
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert!(stages.len() >= 2, "not multi-stage");
    let last = stages.last().unwrap();
    assert!(
        !last.lines().any(|l| l.trim_start().starts_with("USER ")),
        "the action's final stage sets USER: GitHub could not use the workspace\n{last}"
    );
    assert!(
        !last.contains("WORKDIR"),
        "GitHub sets the working directory: {last}"
    );
    assert!(
        last.contains(r#"ENTRYPOINT ["/usr/local/bin/siteport"]"#),
        "{last}"
    );
    assert!(last.contains("SITEPORT_CREDENTIAL_BACKEND=env"), "{last}");
}

#[test]
fn example_configs_load() {
    let mut configs = vec![repo().join("deploy/docker/siteport.toml")];
    for e in std::fs::read_dir(repo().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            configs.push(p);
        }
    }
    assert!(configs.len() >= 4, "{configs:?}");
    let sb = Sandbox::new();
    for c in configs {
        // Loading the config is part of selecting the backend; env is always available.
        let o = sb.run(
            &[
                "--config",
                c.to_str().unwrap(),
                "--credential-backend",
                "env",
                "credential",
                "list",
            ],
            "",
            &[],
        );
        assert_code(&o, 0);
    }
    // And the loader does reject a broken one, so the check above means something.
    let bad = sb.path("bad.toml");
    std::fs::write(&bad, "[[site]]\nname = \"a\"\nbogus_key = 1\n").unwrap();
    let o = sb.run(
        &[
            "--config",
            bad.to_str().unwrap(),
            "--credential-backend",
            "env",
            "credential",
            "list",
        ],
        "",
        &[],
    );
    assert_code(&o, 2);
}

/// The `siteport.toml: |` block of a ConfigMap in a manifest, dedented.
fn embedded_config(manifest: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        if line.trim_end() == "  siteport.toml: |" {
            inside = true;
            continue;
        }
        if inside {
            if line.is_empty() {
                out.push('\n');
            } else if let Some(l) = line.strip_prefix("    ") {
                out.push_str(l);
                out.push('\n');
            } else {
                break;
            }
        }
    }
    out
}

/// One CronJob per cloud reads the FTP password from that cloud's secret manager with the
/// cloud's pod identity (no key in the pod); each is validated strictly by
/// `kubernetes_manifests_validate_strictly` (it checks every yaml there), and its config loads.
#[test]
fn cloud_cronjobs_use_workload_identity_and_a_loadable_config() {
    let dir = repo().join("deploy/kubernetes");
    let sb = Sandbox::new();
    for (file, backend, identity) in [
        (
            "cronjob-eks-irsa.yaml",
            "aws",
            "eks.amazonaws.com/role-arn: arn:aws:iam::",
        ),
        (
            "cronjob-gke-workload-identity.yaml",
            "gcp",
            "iam.gke.io/gcp-service-account: ",
        ),
        (
            "cronjob-aks-workload-identity.yaml",
            "azure",
            "azure.workload.identity/client-id: ",
        ),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let o = kubernetes_validate(&path);
        assert!(o.status.success(), "{file}: {}{}", stdout(&o), stderr(&o));
        for must in [
            "kind: ServiceAccount",
            "kind: CronJob",
            &format!("serviceAccountName: siteport-{backend}"),
            identity,
            r#"args: ["export", "--all"]"#,
            &format!("--features {backend}"),
        ] {
            assert!(text.contains(must), "{file} lacks {must}");
        }
        // No password and no key in the manifest: the identity fetches it.
        assert!(
            !text.contains("secretKeyRef") && !text.contains("PASSWORD"),
            "{file}"
        );
        let config = embedded_config(&text);
        assert!(
            config.contains(&format!("backend = \"{backend}\"")),
            "{file}:\n{config}"
        );
        let c = sb.path(&format!("{backend}.toml"));
        std::fs::write(&c, &config).unwrap();
        let o = sb.run(
            &[
                "--config",
                c.to_str().unwrap(),
                "--credential-backend",
                "env",
                "credential",
                "list",
            ],
            "",
            &[],
        );
        assert_code(&o, 0);
    }
    // AKS injects the token only into pods with this label.
    let aks = std::fs::read_to_string(dir.join("cronjob-aks-workload-identity.yaml")).unwrap();
    assert!(aks.contains("azure.workload.identity/use: \"true\""));
}
