//! Security properties through the real binary: the store's encryption parameters as written
//! on disk, private modes even under a permissive umask, and hostile input (CR/LF, huge
//! values, non-UTF-8 environment values, path tricks) refused cleanly: the right exit code, a
//! message naming the field, no echo of the value, no panic.
//! (Leaks at every verbosity: tests/leak.rs. Crash safety and tampering: siteport-creds.)

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

use common::*;

/// The age header's recipient stanzas (`-> TYPE args…`) of a binary or armored store.
fn stanzas(store: &std::path::Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(store).unwrap();
    let text = if bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        let b64: String = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    } else {
        bytes
    };
    let header_end = text
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("no age header end");
    let header = String::from_utf8_lossy(&text[..header_end]).into_owned();
    assert!(header.starts_with("age-encryption.org/v1\n"), "{header}");
    header
        .lines()
        .filter_map(|l| l.strip_prefix("-> "))
        .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        // age adds random "grease" stanzas that no identity matches (format agility).
        .filter(|s| !s[0].ends_with("-grease"))
        .collect()
}

#[test]
fn store_encryption_parameters() {
    // Identity mode: X25519 to our identity, nothing weaker beside it.
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    assert_code(
        &sb.run(
            &["credential", "add", "a", "-u", "u", "--password-stdin"],
            "p\n",
            &[],
        ),
        0,
    );
    let s = stanzas(&sb.store());
    assert!(!s.is_empty());
    for st in &s {
        assert_eq!(st[0], "X25519", "unexpected recipient stanza {st:?}");
    }
    let identity = std::fs::read_to_string(sb.identity()).unwrap();
    assert!(
        identity.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")),
        "identity is not an age X25519 key"
    );

    // Passphrase mode: a single scrypt stanza, work factor at least 18.
    let sb = Sandbox::new();
    let pass = [("SITEPORT_PASSPHRASE", "correct horse battery staple")];
    assert_code(
        &sb.run(&["credential", "init", "--passphrase"], "", &pass),
        0,
    );
    let s = stanzas(&sb.store());
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0][0], "scrypt");
    let wf: u8 = s[0][2].parse().unwrap();
    assert!(wf >= 18, "scrypt work factor {wf} < 18");
}

/// Runs the binary under `sh -c 'umask 000; exec …'`.
fn run_umask0(sb: &Sandbox, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .envs(sb.envs())
        .current_dir(sb.workdir())
        .arg("-c")
        .arg(r#"umask 000; exec "$@""#)
        .arg("sh")
        .arg(bin())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn private_modes_even_with_umask_000() {
    let sb = Sandbox::new();
    assert_code(&run_umask0(&sb, &["credential", "init"], ""), 0);
    assert_code(
        &run_umask0(
            &sb,
            &["credential", "add", "a", "-u", "u", "--password-stdin"],
            "p\n",
        ),
        0,
    );
    assert_eq!(mode(&sb.store()), 0o600);
    assert_eq!(mode(sb.store().parent().unwrap()), 0o700);
    assert_eq!(mode(&sb.identity()), 0o600);
    assert_eq!(mode(sb.identity().parent().unwrap()), 0o700);

    let env = sb.path("out.env");
    let dir = sb.path("out-secrets");
    let k8s = sb.path("out.yaml");
    for (fmt, out) in [
        ("env-file", &env),
        ("docker-secrets", &dir),
        ("k8s-secret", &k8s),
    ] {
        assert_code(
            &run_umask0(
                &sb,
                &[
                    "credential",
                    "export",
                    "--format",
                    fmt,
                    "-o",
                    out.to_str().unwrap(),
                ],
                "",
            ),
            0,
        );
    }
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(&k8s), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("a")), 0o700);
    assert_eq!(mode(&dir.join("a/password")), 0o600);
    assert_eq!(mode(&dir.join("file-vars.env")), 0o600);
    // No temp file left behind by the atomic writes.
    for d in [sb.root.path().to_path_buf(), dir.clone(), dir.join("a")] {
        for e in std::fs::read_dir(&d).unwrap() {
            let n = e.unwrap().file_name();
            assert!(
                !n.to_string_lossy().starts_with(".siteport-export-"),
                "{n:?} left in {}",
                d.display()
            );
        }
    }
}

/// Asserts a clean refusal: exit `code`, `error:` naming `field`, none of `must_not_echo` in
/// either stream, no panic.
#[track_caller]
fn refused(o: &Output, code: i32, field: &str, must_not_echo: &[&[u8]]) {
    assert_code(o, code);
    let err = stderr(o);
    assert!(err.contains("error:") && err.contains(field), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for bad in must_not_echo {
        for stream in [&o.stdout, &o.stderr] {
            assert!(
                !stream.windows(bad.len()).any(|w| w == *bad),
                "the rejected value was echoed: {err}"
            );
        }
    }
}

#[test]
fn hostile_input_is_refused_cleanly() {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let add = |args: &[&str], stdin: &str| {
        let mut full = vec!["credential", "add"];
        full.extend_from_slice(args);
        sb.run(&full, stdin, &[])
    };

    // CR/LF would smuggle FTP commands: `USER a\r\nDELE index.html`.
    let o = add(
        &["x", "-u", "a\r\nDELE index.html", "--password-stdin"],
        "p\n",
    );
    refused(&o, 2, "username", &[b"DELE"]);
    let o = add(&["x", "-u", "u", "--password-stdin"], "pa\rss-SECRETCR\n");
    refused(&o, 2, "password", &[b"SECRETCR"]);
    let o = add(
        &[
            "x",
            "-u",
            "u",
            "--host",
            "h\nPORT 1,2,3,4,5,6",
            "--password-stdin",
        ],
        "p\n",
    );
    refused(&o, 2, "host", &[b"PORT 1,2"]);
    let o = add(&["x", "-u", "u", "--password-stdin"], "pw\u{0}NULSECRET\n");
    refused(&o, 2, "password", &[b"NULSECRET"]);

    // Huge values: a 2 KiB username, a 1 MiB password on stdin.
    let big_user = "U".repeat(2048);
    let o = add(&["x", "-u", &big_user, "--password-stdin"], "p\n");
    refused(&o, 2, "username", &[big_user.as_bytes()]);
    let big_pw = format!("{}\n", "P".repeat(1 << 20));
    let o = add(&["x", "-u", "u", "--password-stdin"], &big_pw);
    refused(&o, 2, "password", &[&[b'P'; 64]]);

    // Names that try to leave a directory or inject into variable names.
    for name in ["../etc", "a/b", "a b", ".hidden", "-rf"] {
        let o = sb.run(&["credential", "show", "--", name], "", &[]);
        refused(&o, 2, "name", &[]);
        let o = sb.run(
            &[
                "--credential-backend",
                "dir",
                "credential",
                "show",
                "--",
                name,
            ],
            "",
            &[("SITEPORT_SECRETS_DIR", sb.root.path().to_str().unwrap())],
        );
        refused(&o, 2, "name", &[]);
    }

    // Nothing was stored by any of that.
    let o = sb.run(&["--json", "credential", "list"], "", &[]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["credentials"].as_array().unwrap().len(), 0);
}

#[test]
fn hostile_environment_is_refused_cleanly() {
    let sb = Sandbox::new();
    let show = |env: &[(&OsStr, &OsStr)]| {
        let mut c = sb.cmd(&["--credential-backend", "env", "credential", "show", "x"]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let os = |b: &'static [u8]| OsStr::from_bytes(b);
    let user = os(b"SITEPORT_CRED_X_USERNAME");
    let pass = os(b"SITEPORT_CRED_X_PASSWORD");

    // Non-UTF-8 bytes in a password variable.
    let o = show(&[(user, os(b"u")), (pass, os(b"NONUTF\xff\xfeSECRET"))]);
    refused(&o, 3, "SITEPORT_CRED_X_PASSWORD", &[b"NONUTF", b"SECRET"]);
    // And in a username.
    let o = show(&[(user, os(b"bad\xffuser")), (pass, os(b"p"))]);
    refused(&o, 3, "SITEPORT_CRED_X_USERNAME", &[]);
    // CR/LF arriving through the environment.
    let o = show(&[(user, os(b"u\r\nDELE x")), (pass, os(b"p"))]);
    refused(&o, 3, "username", &[b"DELE"]);
    // A huge password variable.
    let huge = "H".repeat(100_000);
    let o = show(&[(user, os(b"u")), (pass, OsStr::new(&huge))]);
    refused(&o, 3, "password", &[&[b'H'; 64]]);

    // A `_FILE` pointing at something that is not a small secret file.
    let o = show(&[
        (user, os(b"u")),
        (os(b"SITEPORT_CRED_X_PASSWORD_FILE"), os(b"/dev/zero")),
    ]);
    assert_ne!(o.status.code(), Some(0), "read /dev/zero as a password");
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let bin_file = sb.path("binary-secret");
    std::fs::write(&bin_file, b"BINSECRET\xff\xfe\n").unwrap();
    let o = show(&[
        (user, os(b"u")),
        (os(b"SITEPORT_CRED_X_PASSWORD_FILE"), bin_file.as_os_str()),
    ]);
    refused(&o, 3, "SITEPORT_CRED_X_PASSWORD_FILE", &[b"BINSECRET"]);
}

/// The raw control bytes of `bytes` other than line feed and tab (C0, DEL, and C1 as UTF-8
/// encodes it), with their offsets: what must never reach a terminal.
fn raw_controls(bytes: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        let c1 = b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
        if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || c1 {
            out.push((i, b));
        }
    }
    out
}

/// A hostile server (libunftp behind a shim): its listings name `red\e[31mname`,
/// `bell\anames`, `../escape`, `a/b`… in every directory, its greeting and every error reply
/// carry escape sequences (clear screen, window title, colour, bell), and its root names a
/// file it does not have. Import, plan and export, in text at `-vvv` (every reply traced) and
/// in `--json`: not one raw control byte but `\n` and `\t` on stdout or stderr; the unsafe
/// names are reported, escaped, and never written locally; the import exits 5 (names refused,
/// a download failed), the export 0 (the server's odd names are only reported).
#[test]
fn hostile_server_text_is_escaped_and_its_names_refused() {
    use siteport_testsupport::{GHOST_NAME, HostileServer};
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    for (p, c) in [
        ("site/index.html", "hi"),
        ("site/sub dir/page.html", "page"),
    ] {
        let p = served.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    let server = HostileServer::start_with_ghost(&served);
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    assert_code(
        &sb.run(
            &[
                "credential",
                "add",
                "h",
                "-u",
                "anonymous",
                "--password-stdin",
            ],
            "guest-pass-12345\n",
            &[],
        ),
        0,
    );
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             credential = \"h\"\nlocal = \"{local}\"\nremote = \"/site\"\nmax_connections = 2\n",
            server.port()
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!("{}\n{}", site("pull", "mirror"), site("push", "public")),
    )
    .unwrap();
    std::fs::create_dir_all(sb.workdir().join("public")).unwrap();
    std::fs::write(sb.workdir().join("public/new.html"), "new").unwrap();

    let check = |what: &str, o: &Output| {
        for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            let bad = raw_controls(bytes);
            assert!(
                bad.is_empty(),
                "{what}: raw control bytes on {stream} at {bad:?}:\n{}",
                String::from_utf8_lossy(bytes).escape_debug()
            );
        }
    };

    // Import, text, every reply traced: exit 5, the names reported escaped.
    let o = sb.run(&["-vvv", "import", "pull"], "", &[]);
    check("import -vvv", &o);
    assert_code(&o, 5);
    let err = stderr(&o);
    for shown in [
        r"red\u{1b}[31mname",
        r"bell\u{7}name",
        r"sub dir/red\u{1b}[31mname",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("refused") && l.contains(shown)),
            "{shown} not reported as refused:\n{err}"
        );
    }
    // The greeting at -vvv (escaped by the log formatter already, its own way) and the
    // ghost's 550 in its error line, escaped.
    assert!(
        err.contains(r"\u{1b}]0;pwned\u{7}") || err.contains(r"\x1b]0;pwned\x07"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains(GHOST_NAME) && l.contains(r"550 \u{1b}]0;pwned")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Only the real files were written, and nothing named by the server anywhere else.
    let mut got: Vec<String> = Vec::new();
    let mut dirs = vec![sb.root.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(|c: char| c.is_control())
                || name.contains("escape")
                || name.contains("outside")
                || name.contains('\\')
            {
                got.push(p.display().to_string());
            }
            if e.file_type().unwrap().is_dir() {
                dirs.push(p);
            }
        }
    }
    assert!(got.is_empty(), "written from hostile names: {got:?}");
    let mirror = sb.workdir().join("mirror");
    assert_eq!(std::fs::read(mirror.join("index.html")).unwrap(), b"hi");
    assert_eq!(
        std::fs::read(mirror.join("sub dir/page.html")).unwrap(),
        b"page"
    );

    // The same in JSON: the refusals in the report, the error's exit code.
    let o = sb.run(&["--json", "import", "pull"], "", &[]);
    check("import --json", &o);
    assert_code(&o, 5);
    let v = json(&o);
    let problems = v["sites"][0]["report"]["problems"].as_array().unwrap();
    let unsafe_paths: Vec<&str> = problems
        .iter()
        .filter(|p| p["kind"] == "unsafe_name")
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(
        unsafe_paths.contains(&r"red\u{1b}[31mname"),
        "{unsafe_paths:?}"
    );
    assert_eq!(v["sites"][0]["error"]["exit_code"], 5, "{v}");

    // The plan lists them as ignored; the export sends what it has and only reports the
    // server's odd names (they are not what it mirrors).
    let o = sb.run(&["-vvv", "plan", "push"], "", &[]);
    check("plan -vvv", &o);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(r"red\u{1b}[31mname"), "{}", stdout(&o));
    for args in [
        &["-vvv", "export", "push"][..],
        &["--json", "export", "push"],
    ] {
        let o = sb.run(args, "", &[]);
        check(&format!("{args:?}"), &o);
        assert_code(&o, 0);
    }
    assert_eq!(std::fs::read(served.join("site/new.html")).unwrap(), b"new");
}
