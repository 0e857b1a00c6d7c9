//! Every command, succeeding and failing, at `-vvv` and with `--json`: no test secret ever
//! appears on stdout or stderr, except the one password `show --reveal` was asked to print.

mod common;

use common::*;

const PW: &str = "Leak-Canary-pw-5f3a";
const PW2: &str = "Leak-Canary-pw2-77c1";
const ENV_PW: &str = "Leak-Canary-envpw-0b9d";
const PASS: &str = "Leak-Canary-passphrase-e41";
const CFG_PW: &str = "Leak-Canary-cfgpw-a1b2";
const SECRETS: [&str; 5] = [PW, PW2, ENV_PW, PASS, CFG_PW];

/// The runs so far and every problem found, so that one failing command does not hide the
/// others: the test fails once, at the end, listing each command and what went wrong.
struct Run<'a> {
    sb: &'a Sandbox,
    runs: usize,
    failures: Vec<String>,
}

impl Run<'_> {
    /// Runs `args` at -vvv (and again with --json) and checks both streams for every secret.
    fn check(&mut self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
        let mut last = None;
        for json in [false, true] {
            let mut full = vec!["-vvv"];
            if json {
                full.push("--json");
            }
            full.extend_from_slice(args);
            let o = self.sb.run(&full, stdin, env);
            for s in SECRETS {
                for (stream, text) in [("stdout", stdout(&o)), ("stderr", stderr(&o))] {
                    self.expect_that(
                        !text.contains(s),
                        format!(
                            "secret leaked on {stream} of `siteport {}`:\n{text}",
                            full.join(" ")
                        ),
                    );
                }
            }
            self.runs += 1;
            last = Some(o);
        }
        last.unwrap()
    }

    /// [`check`](Self::check), and the last run (the `--json` one) exits `code`.
    fn expect(&mut self, args: &[&str], stdin: &str, env: &[(&str, &str)], code: i32) {
        let o = self.check(args, stdin, env);
        self.expect_code(&o, code, &format!("--json {}", args.join(" ")));
    }

    fn expect_code(&mut self, o: &std::process::Output, code: i32, what: &str) {
        self.expect_that(
            o.status.code() == Some(code),
            format!(
                "`siteport {what}`: exit {:?}, expected {code}\nstdout:\n{}\nstderr:\n{}",
                o.status.code(),
                stdout(o),
                stderr(o)
            ),
        );
    }

    /// Records `problem` unless `ok`.
    fn expect_that(&mut self, ok: bool, problem: String) {
        if !ok {
            self.failures.push(problem);
        }
    }
}

#[test]
fn no_command_leaks_a_secret_at_any_verbosity() {
    let sb = Sandbox::new();
    let mut r = Run {
        sb: &sb,
        runs: 0,
        failures: Vec::new(),
    };
    // Each phase builds on the state the previous ones left (a store, a credential, …).
    before_a_store(&mut r);
    adding(&mut r);
    reading(&mut r);
    config_and_keys(&mut r);
    exporting(&mut r);
    revealing_and_removing(&mut r);
    let runs = r.runs;
    r.expect_that(runs >= 60, format!("only {runs} runs"));
    assert!(
        r.failures.is_empty(),
        "{} problem(s):\n\n{}",
        r.failures.len(),
        r.failures.join("\n\n")
    );
}

const ENV_CRED: [(&str, &str); 2] = [
    ("SITEPORT_CRED_ENVSITE_USERNAME", "eu"),
    ("SITEPORT_CRED_ENVSITE_PASSWORD", ENV_PW),
];
const WITH_PASSPHRASE: [(&str, &str); 1] = [("SITEPORT_PASSPHRASE", PASS)];

fn pw_line() -> String {
    format!("{PW}\n")
}

fn before_a_store(r: &mut Run) {
    let pw_line = pw_line();
    // Before a store exists.
    r.check(&["credential", "list"], "", &[]);
    r.check(&["credential", "show", "acme"], "", &[]);
    r.check(
        &["credential", "add", "acme", "-u", "u", "--password-stdin"],
        &pw_line,
        &[],
    );
    r.check(&["credential", "rekey"], "", &[]);
    let o = r.check(&["credential", "init"], "", &[]);
    // The first (non-JSON) run created it; the JSON run found it existing.
    r.expect_code(&o, 3, "--json credential init");
}

fn adding(r: &mut Run) {
    let pw_line = pw_line();
    // Adding, with every kind of failure around it.
    r.expect(
        &[
            "credential",
            "add",
            "acme",
            "-u",
            "u1",
            "--host",
            "h",
            "--password-stdin",
        ],
        &pw_line,
        &[],
        3,
    );
    r.expect(
        &[
            "credential",
            "add",
            "acme",
            "-u",
            "u1",
            "--password-stdin",
            "--force",
        ],
        &format!("{PW2}\n"),
        &[],
        0,
    );
    r.expect(
        &[
            "credential",
            "add",
            "Bad/Name",
            "-u",
            "u",
            "--password-stdin",
        ],
        &pw_line,
        &[],
        2,
    );
    r.expect(
        &["credential", "add", "ctl", "-u", "u", "--password-stdin"],
        &format!("{PW}\u{7}x\n"),
        &[],
        2,
    );
    r.expect(
        &[
            "credential",
            "add",
            "ctl",
            "-u",
            "u\u{1}",
            "--password-stdin",
        ],
        &pw_line,
        &[],
        2,
    );
    r.expect(
        &["credential", "add", "ctl", "-u", "u", "--port", "x"],
        &pw_line,
        &[],
        2,
    );
    r.expect(
        &["credential", "add", "noterm", "-u", "u"],
        &pw_line,
        &[],
        2,
    );
    r.expect(
        &["credential", "add", "env1", "-u", "u", "--password-stdin"],
        &pw_line,
        &[("SITEPORT_CREDENTIAL_BACKEND", "env")],
        3,
    );
}

fn reading(r: &mut Run) {
    let env_cred = ENV_CRED;
    // Reading.
    r.expect(&["credential", "list"], "", &[], 0);
    r.expect(&["credential", "show", "acme"], "", &[], 0);
    r.expect(&["credential", "show", "ghost"], "", &[], 3);
    r.expect(
        &["--credential-backend", "env", "credential", "list"],
        "",
        &env_cred,
        0,
    );
    r.expect(
        &[
            "--credential-backend",
            "env",
            "credential",
            "show",
            "envsite",
        ],
        "",
        &env_cred,
        0,
    );
    r.expect(
        &["--credential-backend", "env,file", "credential", "list"],
        "",
        &env_cred,
        0,
    );
    r.expect(
        &["--credential-backend", "nope", "credential", "list"],
        "",
        &env_cred,
        2,
    );
}

fn config_and_keys(r: &mut Run) {
    let sb = r.sb;
    let pass = WITH_PASSPHRASE;
    // A config with a hard-coded password and a syntax error on that line.
    let cfg = sb.path("bad.toml");
    std::fs::write(&cfg, format!("[[site]]\npassword = \"{CFG_PW}\" x\n")).unwrap();
    r.expect(
        &["--config", cfg.to_str().unwrap(), "credential", "list"],
        "",
        &[],
        2,
    );

    // Key changes, passphrase mode, wrong passphrase.
    // The plain run switches to passphrase mode; the JSON run then finds it already there and,
    // with no terminal to ask a new passphrase on, fails: only the next `list` is asserted.
    r.check(&["credential", "rekey", "--passphrase"], "", &pass);
    r.expect(&["credential", "list"], "", &pass, 0);
    r.expect(
        &["credential", "list"],
        "",
        &[("SITEPORT_PASSPHRASE", "wrong")],
        3,
    );
    r.expect(&["credential", "show", "acme"], "", &[], 3);
    r.expect(&["credential", "rekey", "--identity"], "", &pass, 0);
    r.expect(&["credential", "rekey", "--new-identity"], "", &[], 0);
    r.expect(&["completions", "bash"], "", &[], 0);
}

fn exporting(r: &mut Run) {
    let sb = r.sb;
    let env_cred = ENV_CRED;
    // credential export to files (the secrets go into the files, never to the terminal),
    // from the store and from the env backend, succeeding and failing.
    let out_env = sb.path("leak-export.env");
    let out_dir = sb.path("leak-export-secrets");
    let out_k8s = sb.path("leak-export.yaml");
    for (fmt, out) in [
        ("env-file", &out_env),
        ("docker-secrets", &out_dir),
        ("k8s-secret", &out_k8s),
    ] {
        // The plain run writes; the JSON run finds the output there and fails (exit 2).
        let args = [
            "credential",
            "export",
            "--format",
            fmt,
            "-o",
            out.to_str().unwrap(),
        ];
        r.expect(&args, "", &env_cred, 2);
        let mut forced = args.to_vec();
        forced.push("--force");
        r.expect(&forced, "", &env_cred, 0);
        let mut from_env = vec!["--credential-backend", "env"];
        from_env.extend(forced);
        r.expect(&from_env, "", &env_cred, 0);
    }
    let written = std::fs::read_to_string(&out_env).unwrap_or_default();
    r.expect_that(
        written.contains(ENV_PW),
        format!("{} lacks the env backend's password", out_env.display()),
    );
    r.expect(
        &[
            "credential",
            "export",
            "--format",
            "env-file",
            "-o",
            "-",
            "nosuch",
        ],
        "",
        &[],
        3,
    );
}

fn revealing_and_removing(r: &mut Run) {
    // --reveal prints the asked-for password on stdout only, nothing on stderr.
    for json in [false, true] {
        let mut args = vec!["-vvv", "credential", "show", "acme", "--reveal"];
        if json {
            args.insert(1, "--json");
        }
        let o = r.sb.run(&args, "", &[]);
        r.expect_code(&o, 0, &args.join(" "));
        let shown = stdout(&o).matches(PW2).count();
        r.expect_that(
            shown == 1,
            format!(
                "`{}`: the password shown {shown} times:\n{}",
                args.join(" "),
                stdout(&o)
            ),
        );
        for s in SECRETS {
            r.expect_that(
                !stderr(&o).contains(s),
                format!("`{}`: a secret on stderr:\n{}", args.join(" "), stderr(&o)),
            );
        }
    }

    r.expect(&["credential", "remove", "acme"], "", &[], 3); // JSON run: already gone
    r.expect(&["credential", "remove", "acme"], "", &[], 3);
}
