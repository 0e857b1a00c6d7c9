//! The acceptance walk against the real file backend: init, add via --password-stdin, list,
//! show, reveal, remove; file modes; exit codes; JSON; interoperability with the `age` CLI.

mod common;

use std::process::Command as StdCommand;

use common::*;

const PW1: &str = "pw1-Acceptance-77";

fn init(sb: &Sandbox) {
    let o = sb.run(&["credential", "init"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("age1"), "{}", stdout(&o));
}

fn add_acme(sb: &Sandbox) {
    let o = sb.run(
        &[
            "credential",
            "add",
            "acme",
            "--username",
            "u1",
            "--host",
            "ftp.example",
            "--password-stdin",
        ],
        &format!("{PW1}\n"),
        &[],
    );
    assert_code(&o, 0);
}

#[test]
fn acceptance_walk() {
    let sb = Sandbox::new();
    init(&sb);
    add_acme(&sb);

    assert_eq!(mode(&sb.store()), 0o600);
    assert_eq!(mode(sb.store().parent().unwrap()), 0o700);
    assert_eq!(mode(&sb.identity()), 0o600);
    assert_eq!(mode(sb.identity().parent().unwrap()), 0o700);

    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["acme", "u1", "ftp.example", "-", "file"]);
    assert!(!out.contains(PW1));

    let o = sb.run(&["credential", "show", "acme"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("password: ****\n"));
    assert!(!stdout(&o).contains(PW1));

    let o = sb.run(&["credential", "show", "acme", "--reveal"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&format!("password: {PW1}\n")));

    // The store is plain age: the standard CLI opens it with the identity.
    let dec = StdCommand::new("age")
        .arg("-d")
        .arg("-i")
        .arg(sb.identity())
        .arg(sb.store())
        .output()
        .expect("the `age` CLI is installed (scripts/test installs it)");
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert!(String::from_utf8_lossy(&dec.stdout).contains("acme"));

    let o = sb.run(&["credential", "remove", "acme"], "", &[]);
    assert_code(&o, 0);
    let o = sb.run(&["credential", "show", "acme"], "", &[]);
    assert_code(&o, 3);
    assert_eq!(mode(&sb.store()), 0o600);
}

#[test]
fn error_exit_codes() {
    let sb = Sandbox::new();
    init(&sb);
    add_acme(&sb);
    // init twice without --force
    assert_code(&sb.run(&["credential", "init"], "", &[]), 3);
    // not found
    let o = sb.run(&["credential", "remove", "ghost"], "", &[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("hint: add it with `siteport credential add ghost`"));
    // duplicate add, then --force replaces
    let o = sb.run(
        &["credential", "add", "acme", "-u", "u2", "--password-stdin"],
        "other-pw\n",
        &[],
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = sb.run(
        &[
            "credential",
            "add",
            "acme",
            "-u",
            "u2",
            "--password-stdin",
            "--force",
        ],
        "other-pw\n",
        &[],
    );
    assert_code(&o, 0);
    let o = sb.run(
        &["--json", "credential", "show", "acme", "--reveal"],
        "",
        &[],
    );
    assert_eq!(json(&o)["password"], "other-pw");
    assert_eq!(json(&o)["username"], "u2");
    // bad name
    assert_code(
        &sb.run(
            &[
                "credential",
                "add",
                "no/slash",
                "-u",
                "u",
                "--password-stdin",
            ],
            "x\n",
            &[],
        ),
        2,
    );
    // bad input: empty password, control characters, no terminal
    let o = sb.run(
        &["credential", "add", "b", "-u", "u", "--password-stdin"],
        "\n",
        &[],
    );
    assert_code(&o, 2);
    let o = sb.run(
        &["credential", "add", "b", "-u", "u", "--password-stdin"],
        "a\u{1b}b\n",
        &[],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("invalid password"), "{}", stderr(&o));
    let o = sb.run(&["credential", "add", "b", "-u", "u"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--password-stdin"));
    let o = sb.run(&["credential", "add", "b", "--password-stdin"], "x\n", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--username"));

    // bad key: another identity cannot open the store, and nothing is overwritten.
    let before = std::fs::read(sb.store()).unwrap();
    let keygen = StdCommand::new("age-keygen").output().unwrap();
    assert!(keygen.status.success());
    std::fs::write(sb.identity(), &keygen.stdout).unwrap();
    let o = sb.run(&["--json", "credential", "list"], "", &[]);
    assert_code(&o, 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "bad_key", "{v}");
    let o = sb.run(
        &["credential", "add", "c", "-u", "u", "--password-stdin"],
        "pw\n",
        &[],
    );
    assert_code(&o, 3);
    assert_eq!(std::fs::read(sb.store()).unwrap(), before);
}

#[test]
fn password_stdin_keeps_spaces_strips_only_the_newline() {
    let sb = Sandbox::new();
    init(&sb);
    let o = sb.run(
        &["credential", "add", "sp", "-u", "u", "--password-stdin"],
        "  two words  \r\nsecond line ignored\n",
        &[],
    );
    assert_code(&o, 0);
    let o = sb.run(&["--json", "credential", "show", "sp", "--reveal"], "", &[]);
    assert_eq!(json(&o)["password"], "  two words  ");
}

#[test]
fn json_outputs_parse() {
    let sb = Sandbox::new();
    let o = sb.run(&["--json", "credential", "init"], "", &[]);
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["mode"], "identity");
    assert!(v["public_key"].as_str().unwrap().starts_with("age1"));
    let o = sb.run(
        &[
            "--json",
            "credential",
            "add",
            "acme",
            "-u",
            "u1",
            "--port",
            "2121",
            "--password-stdin",
        ],
        &format!("{PW1}\n"),
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["stored"], "acme");
    let o = sb.run(&["--json", "credential", "list"], "", &[]);
    let v = json(&o);
    assert_eq!(v["credentials"][0]["port"], 2121);
    assert_eq!(v["credentials"][0]["source"], "file");
    let o = sb.run(&["--json", "credential", "rekey"], "", &[]);
    assert_code(&o, 0);
    assert!(
        json(&o)["backup"]
            .as_str()
            .unwrap()
            .contains("credentials.age")
    );
    let o = sb.run(&["--json", "credential", "remove", "acme"], "", &[]);
    assert_eq!(json(&o)["removed"], "acme");
}

#[test]
fn passphrase_mode_and_rekey_to_new_identity() {
    let sb = Sandbox::new();
    let pass = [("SITEPORT_PASSPHRASE", "correct horse battery")];
    let o = sb.run(&["credential", "init", "--passphrase"], "", &pass);
    assert_code(&o, 0);
    let o = sb.run(
        &["credential", "add", "acme", "-u", "u1", "--password-stdin"],
        &format!("{PW1}\n"),
        &pass,
    );
    assert_code(&o, 0);
    // Wrong passphrase: bad key, exit 3.
    let o = sb.run(
        &["credential", "list"],
        "",
        &[("SITEPORT_PASSPHRASE", "wrong")],
    );
    assert_code(&o, 3);
    // No passphrase and no terminal: a credential error that says how to provide it.
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("SITEPORT_PASSPHRASE"), "{}", stderr(&o));
    // Back to identity mode.
    let o = sb.run(&["credential", "rekey", "--identity"], "", &pass);
    assert_code(&o, 0);
    let o = sb.run(
        &["--json", "credential", "show", "acme", "--reveal"],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["password"], PW1);
    let old_identity = std::fs::read(sb.identity()).unwrap();
    let o = sb.run(&["credential", "rekey", "--new-identity"], "", &[]);
    assert_code(&o, 0);
    assert_ne!(std::fs::read(sb.identity()).unwrap(), old_identity);
    assert_eq!(mode(&sb.identity()), 0o600);
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("acme"));
}

#[test]
fn init_and_rekey_need_the_file_backend() {
    let sb = Sandbox::new();
    let o = sb.run(
        &["--credential-backend", "env", "credential", "init"],
        "",
        &[],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("--credential-backend file"),
        "{}",
        stderr(&o)
    );
    // A chain that includes file is fine; add goes to the first writable member.
    let o = sb.run(
        &["--credential-backend", "env,file", "credential", "init"],
        "",
        &[],
    );
    assert_code(&o, 0);
    let o = sb.run(
        &[
            "--credential-backend",
            "env,file",
            "credential",
            "add",
            "acme",
            "-u",
            "u",
            "--password-stdin",
        ],
        "p\n",
        &[],
    );
    assert_code(&o, 0);
    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "env,file",
            "credential",
            "list",
        ],
        "",
        &[
            ("SITEPORT_CRED_OTHER_USERNAME", "o"),
            ("SITEPORT_CRED_OTHER_PASSWORD", "op"),
        ],
    );
    assert_code(&o, 0);
    let v = json(&o);
    let sources: Vec<(&str, &str)> = v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("acme", "file"), ("other", "env")]);
}
