//! The command line itself: help, usage errors, backend selection, config seam, JSON errors,
//! and the credential commands against the (read-only) env backend.

mod common;

use common::*;

const ENV_PW: &str = "env-Secret-pw-71";

fn acme_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SITEPORT_CRED_ACME_USERNAME", "u-env"),
        ("SITEPORT_CRED_ACME_PASSWORD", ENV_PW),
        ("SITEPORT_CRED_ACME_HOST", "ftp.env.example"),
    ]
}

#[test]
fn help_documents_exit_codes_and_commands() {
    let sb = Sandbox::new();
    let o = sb.run(&["--help"], "", &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    for want in [
        "Exit codes:",
        "2  usage",
        "3  credential",
        "credential",
        "completions",
        "--json",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let o = sb.run(&["credential", "add", "--help"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("--password-stdin"));
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    // There is no way to pass a password as an argument.
    let o = sb.run(&["credential", "add", "acme", "--password", "x"], "", &[]);
    assert_code(&o, 2);
    assert_code(&sb.run(&["frobnicate"], "", &[]), 2);
    assert_code(&sb.run(&["-v", "-q", "credential", "list"], "", &[]), 2);
    let o = sb.run(&["credential", "add", "acme", "--port", "0"], "", &[]);
    assert_code(&o, 2);
}

#[test]
fn bad_names_exit_2_and_name_the_field() {
    let sb = Sandbox::new();
    for bad in [".acme", "a b", "Ünï", &"a".repeat(65)] {
        let o = sb.run(&["credential", "show", bad], "", &acme_env());
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(err.starts_with("error: invalid name"), "{err}");
        assert!(err.contains("hint: "), "{err}");
    }
    let o = sb.run(&["--json", "credential", "remove", "a/b"], "", &[]);
    assert_code(&o, 2);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert_eq!(v["error"]["exit_code"], 2);
}

#[test]
fn unknown_backend_is_a_usage_error_from_flag_env_or_config() {
    let sb = Sandbox::new();
    let o = sb.run(
        &["--credential-backend", "nope", "credential", "list"],
        "",
        &[],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("--credential-backend"),
        "{}",
        stderr(&o)
    );
    let o = sb.run(
        &["credential", "list"],
        "",
        &[("SITEPORT_CREDENTIAL_BACKEND", "nope")],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("SITEPORT_CREDENTIAL_BACKEND"));

    std::fs::write(
        sb.workdir().join("siteport.toml"),
        "[credentials]\nbackend = \"nope\"\n",
    )
    .unwrap();
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("siteport.toml:"), "{}", stderr(&o));
}

#[test]
fn broken_or_missing_config_is_a_usage_error_without_echoing_the_line() {
    let sb = Sandbox::new();
    let cfg = sb.path("broken.toml");
    std::fs::write(&cfg, "[[site]]\npassword = \"cfg-Leak-pw\" oops\n").unwrap();
    let o = sb.run(
        &["--config", cfg.to_str().unwrap(), "credential", "list"],
        "",
        &[],
    );
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("broken.toml:2:"), "{err}");
    assert!(!err.contains("cfg-Leak-pw"), "{err}");

    let o = sb.run(
        &["--config", "/nonexistent/x.toml", "credential", "list"],
        "",
        &[],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("/nonexistent/x.toml"));
    let o = sb.run(
        &["credential", "list"],
        "",
        &[("SITEPORT_CONFIG", "/nonexistent/y.toml")],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("SITEPORT_CONFIG"));
}

#[test]
fn env_backend_list_show_reveal() {
    let sb = Sandbox::new();
    let env = acme_env();
    let o = sb.run(
        &["--credential-backend", "env", "credential", "list"],
        "",
        &env,
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "USERNAME", "HOST", "PORT", "SOURCE", "UPDATED"]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["acme", "u-env", "ftp.env.example", "-", "env", "-"]);
    assert!(!out.contains(ENV_PW));

    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env",
            "credential",
            "list",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    let v = json(&o);
    let list = v["credentials"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "acme");
    assert_eq!(list[0]["username"], "u-env");
    assert_eq!(list[0]["source"], "env");
    assert!(!stdout(&o).contains(ENV_PW));

    let o = sb.run(
        &["credential", "show", "ACME"],
        "",
        &[env.clone(), vec![("SITEPORT_CREDENTIAL_BACKEND", "env")]].concat(),
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("password: ****"), "{out}");
    assert!(out.contains("username: u-env"), "{out}");
    assert!(!out.contains(ENV_PW));

    let o = sb.run(
        &[
            "--credential-backend",
            "env",
            "credential",
            "show",
            "acme",
            "--reveal",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&format!("password: {ENV_PW}\n")));

    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env",
            "credential",
            "show",
            "acme",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["host"], "ftp.env.example");
    assert!(v.get("password").is_none(), "{v}");
    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env",
            "credential",
            "show",
            "acme",
            "--reveal",
        ],
        "",
        &env,
    );
    assert_eq!(json(&o)["password"], ENV_PW);
}

#[test]
fn config_selects_backend_and_flag_overrides_it() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        "[credentials]\nbackend = \"env\"\n",
    )
    .unwrap();
    let o = sb.run(&["--json", "credential", "list"], "", &acme_env());
    assert_code(&o, 0);
    assert_eq!(json(&o)["credentials"][0]["source"], "env");
    // The env variable beats the config, the flag beats both.
    let o = sb.run(
        &["--json", "credential", "list"],
        "",
        &[acme_env(), vec![("SITEPORT_CREDENTIAL_BACKEND", "nope")]].concat(),
    );
    assert_code(&o, 2);
    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env",
            "credential",
            "list",
        ],
        "",
        &[acme_env(), vec![("SITEPORT_CREDENTIAL_BACKEND", "nope")]].concat(),
    );
    assert_code(&o, 0);
}

#[test]
fn not_found_and_read_only_exit_3_with_hints() {
    let sb = Sandbox::new();
    let o = sb.run(
        &["--credential-backend", "env", "credential", "show", "ghost"],
        "",
        &acme_env(),
    );
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("ghost"), "{err}");

    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env",
            "credential",
            "show",
            "ghost",
        ],
        "",
        &acme_env(),
    );
    assert_code(&o, 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["exit_code"], 3);

    // add on the env backend explains how to provide the variables; nothing is prompted.
    let o = sb.run(
        &[
            "--credential-backend",
            "env",
            "credential",
            "add",
            "new-site.prod",
            "--username",
            "u",
        ],
        "",
        &[],
    );
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("SITEPORT_CRED_NEW_SITE_PROD_PASSWORD"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn completions_are_generated() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = sb.run(&["completions", shell], "", &[]);
        assert_code(&o, 0);
        let out = stdout(&o);
        assert!(
            out.contains("siteport") && out.contains("credential"),
            "{shell}"
        );
    }
    assert_code(&sb.run(&["completions", "tcsh"], "", &[]), 2);
}

#[test]
fn dir_backend_reads_a_mounted_secrets_directory() {
    let sb = Sandbox::new();
    let root = sb.path("secrets");
    std::fs::create_dir_all(root.join("acme")).unwrap();
    std::fs::write(root.join("acme/username"), "u-dir\n").unwrap();
    std::fs::write(root.join("acme/password"), "dir-Secret-pw\n").unwrap();
    std::fs::write(root.join("acme/port"), "2121\n").unwrap();
    let env = [("SITEPORT_SECRETS_DIR", root.to_str().unwrap())];

    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "dir",
            "credential",
            "list",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["credentials"][0]["name"], "acme");
    assert_eq!(v["credentials"][0]["port"], 2121);
    assert_eq!(v["credentials"][0]["source"], "dir");
    assert!(!stdout(&o).contains("dir-Secret-pw"));

    // Rotation is picked up: the file is re-read on every run.
    std::fs::write(root.join("acme/password"), "rotated-pw\n").unwrap();
    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "dir",
            "credential",
            "show",
            "acme",
            "--reveal",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["password"], "rotated-pw");

    // The root can also come from the config, relative to the config file.
    std::fs::write(
        sb.path("cfg.toml"),
        "[credentials]\nbackend = \"dir\"\n[credentials.dir]\nroot = \"secrets\"\n",
    )
    .unwrap();
    let cfg = sb.path("cfg.toml");
    let o = sb.run(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "credential",
            "show",
            "acme",
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("username: u-dir"), "{}", stdout(&o));

    let o = sb.run(
        &[
            "--credential-backend",
            "dir",
            "credential",
            "add",
            "x",
            "-u",
            "u",
            "--password-stdin",
        ],
        "p\n",
        &env,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("x/password"), "{}", stderr(&o));
}

/// `siteport completions bash | head -1` and friends: a reader that closes the pipe ends the
/// command quietly with exit 0 (the read end is closed before the child writes anything).
#[test]
fn closed_stdout_pipe_ends_quietly() {
    let sb = Sandbox::new();
    for args in [
        &["completions", "bash"][..],
        &["man"][..],
        &["--help"][..],
        &["credential", "list"][..],
    ] {
        let mut child = std::process::Command::new(bin())
            .env_clear()
            .envs(sb.envs())
            .current_dir(sb.workdir())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn man_page_is_generated_from_the_clap_tree() {
    let sb = Sandbox::new();
    let o = sb.run(&["man"], "", &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with(".ie") || out.contains(".TH siteport"),
        "{out}"
    );
    for want in ["credential", "export", "import", "completions"] {
        assert!(out.contains(want), "missing {want} in the man page");
    }
}
