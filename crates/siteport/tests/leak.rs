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

struct Run<'a> {
    sb: &'a Sandbox,
    runs: usize,
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
                    assert!(
                        !text.contains(s),
                        "secret leaked on {stream} of `siteport {}`:\n{text}",
                        full.join(" ")
                    );
                }
            }
            self.runs += 1;
            last = Some(o);
        }
        last.unwrap()
    }
}

#[test]
fn no_command_leaks_a_secret_at_any_verbosity() {
    let sb = Sandbox::new();
    let mut r = Run { sb: &sb, runs: 0 };
    let env_cred = [
        ("SITEPORT_CRED_ENVSITE_USERNAME", "eu"),
        ("SITEPORT_CRED_ENVSITE_PASSWORD", ENV_PW),
    ];
    let pass = [("SITEPORT_PASSPHRASE", PASS)];
    let pw_line = format!("{PW}\n");

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
    assert_code(&o, 3); // the first (non-JSON) run created it; the JSON run found it existing.

    // Adding, with every kind of failure around it.
    assert_code(
        &r.check(
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
        ),
        3,
    );
    assert_code(
        &r.check(
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
        ),
        0,
    );
    assert_code(
        &r.check(
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
        ),
        2,
    );
    assert_code(
        &r.check(
            &["credential", "add", "ctl", "-u", "u", "--password-stdin"],
            &format!("{PW}\u{7}x\n"),
            &[],
        ),
        2,
    );
    assert_code(
        &r.check(
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
        ),
        2,
    );
    assert_code(
        &r.check(
            &["credential", "add", "ctl", "-u", "u", "--port", "x"],
            &pw_line,
            &[],
        ),
        2,
    );
    assert_code(
        &r.check(&["credential", "add", "noterm", "-u", "u"], &pw_line, &[]),
        2,
    );
    assert_code(
        &r.check(
            &["credential", "add", "env1", "-u", "u", "--password-stdin"],
            &pw_line,
            &[("SITEPORT_CREDENTIAL_BACKEND", "env")],
        ),
        3,
    );

    // Reading.
    assert_code(&r.check(&["credential", "list"], "", &[]), 0);
    assert_code(&r.check(&["credential", "show", "acme"], "", &[]), 0);
    assert_code(&r.check(&["credential", "show", "ghost"], "", &[]), 3);
    assert_code(
        &r.check(
            &["--credential-backend", "env", "credential", "list"],
            "",
            &env_cred,
        ),
        0,
    );
    assert_code(
        &r.check(
            &[
                "--credential-backend",
                "env",
                "credential",
                "show",
                "envsite",
            ],
            "",
            &env_cred,
        ),
        0,
    );
    assert_code(
        &r.check(
            &["--credential-backend", "env,file", "credential", "list"],
            "",
            &env_cred,
        ),
        0,
    );
    assert_code(
        &r.check(
            &["--credential-backend", "nope", "credential", "list"],
            "",
            &env_cred,
        ),
        2,
    );

    // A config with a hard-coded password and a syntax error on that line.
    let cfg = sb.path("bad.toml");
    std::fs::write(&cfg, format!("[[site]]\npassword = \"{CFG_PW}\" x\n")).unwrap();
    assert_code(
        &r.check(
            &["--config", cfg.to_str().unwrap(), "credential", "list"],
            "",
            &[],
        ),
        2,
    );

    // Key changes, passphrase mode, wrong passphrase.
    // The plain run switches to passphrase mode; the JSON run then finds it already there and,
    // with no terminal to ask a new passphrase on, fails: only the next `list` is asserted.
    r.check(&["credential", "rekey", "--passphrase"], "", &pass);
    assert_code(&r.check(&["credential", "list"], "", &pass), 0);
    assert_code(
        &r.check(
            &["credential", "list"],
            "",
            &[("SITEPORT_PASSPHRASE", "wrong")],
        ),
        3,
    );
    assert_code(&r.check(&["credential", "show", "acme"], "", &[]), 3);
    assert_code(
        &r.check(&["credential", "rekey", "--identity"], "", &pass),
        0,
    );
    assert_code(
        &r.check(&["credential", "rekey", "--new-identity"], "", &[]),
        0,
    );
    assert_code(&r.check(&["completions", "bash"], "", &[]), 0);

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
        assert_code(&r.check(&args, "", &env_cred), 2);
        let mut forced = args.to_vec();
        forced.push("--force");
        assert_code(&r.check(&forced, "", &env_cred), 0);
        let mut from_env = vec!["--credential-backend", "env"];
        from_env.extend(forced);
        assert_code(&r.check(&from_env, "", &env_cred), 0);
    }
    assert!(std::fs::read_to_string(&out_env).unwrap().contains(ENV_PW));
    assert_code(
        &r.check(
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
        ),
        3,
    );

    // --reveal prints the asked-for password on stdout only, nothing on stderr.
    for json in [false, true] {
        let mut args = vec!["-vvv", "credential", "show", "acme", "--reveal"];
        if json {
            args.insert(1, "--json");
        }
        let o = sb.run(&args, "", &[]);
        assert_code(&o, 0);
        assert_eq!(stdout(&o).matches(PW2).count(), 1, "{}", stdout(&o));
        for s in SECRETS {
            assert!(!stderr(&o).contains(s), "{}", stderr(&o));
        }
    }

    assert_code(&r.check(&["credential", "remove", "acme"], "", &[]), 3); // JSON run: already gone
    assert_code(&r.check(&["credential", "remove", "acme"], "", &[]), 3);
    assert!(r.runs >= 60, "only {} runs", r.runs);
}
