//! The hidden prompts, driven through a real pseudo-terminal. Echo is switched ON in the pty
//! before siteport starts (rexpect turns it off by default), so a password that does not show
//! up in the captured output was really hidden by siteport, and the visible username prompt is
//! the control that proves echo was on.

mod common;

use std::process::Command;

use common::*;
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

const TIMEOUT_MS: u64 = 30_000;

/// `siteport ARGS` on a fresh pty with echo on, in the sandbox's environment.
fn spawn(sb: &Sandbox, args: &[&str], extra_env: &[(&str, &str)]) -> PtySession {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("stty echo && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args)
        .env_clear()
        .envs(sb.envs())
        .envs(extra_env.iter().copied())
        .current_dir(sb.workdir());
    spawn_command(c, Some(TIMEOUT_MS)).unwrap()
}

/// Waits for `re` and returns everything read up to and including the match.
fn expect_re(p: &mut PtySession, re: &str) -> String {
    let (before, matched) = p.exp_regex(re).unwrap();
    before + &matched
}

/// Waits for the process and returns its exit code.
fn exit_code(p: &PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("siteport did not exit normally: {other:?}"),
    }
}

#[test]
fn add_prompts_for_username_visibly_and_password_hidden_twice() {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    const PW: &str = "Typed-Secret-pw-31";

    let mut p = spawn(
        &sb,
        &["credential", "add", "acme", "--host", "h.example"],
        &[],
    );
    let mut seen = String::new();
    seen += &p.exp_string("Username for 'acme': ").unwrap();
    p.send_line("typed-user").unwrap();
    seen += &p.exp_string("Password for 'acme': ").unwrap();
    p.send_line(PW).unwrap();
    seen += &p.exp_string("Repeat password for 'acme': ").unwrap();
    p.send_line(PW).unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0, "{seen}");

    assert!(
        seen.contains("typed-user"),
        "echo was not on in the pty: {seen:?}"
    );
    assert!(!seen.contains(PW), "the password was echoed: {seen:?}");
    assert!(seen.contains("stored credential 'acme'"), "{seen:?}");

    let o = sb.run(
        &["--json", "credential", "show", "acme", "--reveal"],
        "",
        &[],
    );
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["password"], PW);
    assert_eq!(v["username"], "typed-user");
}

#[test]
fn mismatched_confirmation_is_refused_and_nothing_is_stored() {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);

    let mut p = spawn(&sb, &["credential", "add", "acme", "--username", "u"], &[]);
    let mut seen = String::new();
    seen += &p.exp_string("Password for 'acme': ").unwrap();
    p.send_line("first-Secret-1").unwrap();
    seen += &p.exp_string("Repeat password for 'acme': ").unwrap();
    p.send_line("second-Secret-2").unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 2, "{seen}");
    assert!(seen.contains("do not match"), "{seen:?}");
    assert!(
        !seen.contains("first-Secret-1") && !seen.contains("second-Secret-2"),
        "{seen:?}"
    );

    assert_code(&sb.run(&["credential", "show", "acme"], "", &[]), 3);
}

#[test]
fn passphrase_prompts_go_through_the_terminal_prompter() {
    let sb = Sandbox::new();
    const PASS: &str = "pty-Passphrase-99";

    let mut p = spawn(&sb, &["credential", "init", "--passphrase"], &[]);
    let mut seen = String::new();
    seen += &expect_re(&mut p, r"^[A-Za-z ]*assphrase for \S+: ");
    p.send_line(PASS).unwrap();
    seen += &expect_re(&mut p, r"Confirm [a-z ]*passphrase for \S+: ");
    p.send_line(PASS).unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0, "{seen}");
    assert!(!seen.contains(PASS), "the passphrase was echoed: {seen:?}");

    // Opening the store asks once; the same passphrase works from the environment.
    let mut p = spawn(&sb, &["credential", "list"], &[]);
    let mut seen = String::new();
    seen += &expect_re(&mut p, r"Passphrase for \S+: ");
    p.send_line(PASS).unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0, "{seen}");
    assert!(seen.contains("no credentials"), "{seen:?}");
    assert!(!seen.contains(PASS));
    let o = sb.run(
        &["credential", "list"],
        "",
        &[("SITEPORT_PASSPHRASE", PASS)],
    );
    assert_code(&o, 0);
}
