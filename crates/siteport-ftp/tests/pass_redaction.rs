//! No error path of the login prints the password: every way `PASS` can fail (refused with
//! `530`, another `5xx`, a `4xx`, the connection lost, no answer, a password that would inject
//! a command) yields an error whose every rendering (`Display`, `Debug`, `{:#?}`, the command,
//! each source in its chain) shows `PASS ****` and never the password, and the protocol trace
//! shows it the same way. Scripted servers give each failure exactly; a real server gives the
//! `530`.

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use siteport_ftp::{ConnectOptions, FtpConnection, FtpError, FtpErrorKind, SecretString, TlsMode};
use siteport_testsupport::{FtpServer, ServerKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const PASSWORD: &str = "Zq7-pa55w0rd-never-shown";

/// What the scripted server does once it has read the `PASS` line.
#[derive(Debug, Clone, Copy)]
enum AfterPass {
    Reply(&'static str),
    Close,
    Silence,
}

/// One login dialogue: greeting, `331` to `USER`, then `after` at `PASS`. Returns the port and
/// what arrived as the `PASS` line (empty if none did).
async fn scripted_server(after: AfterPass) -> (u16, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(String::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut s = BufReader::new(stream);
        let _ = s.get_mut().write_all(b"220 scripted\r\n").await;
        let mut line = String::new();
        while s.read_line(&mut line).await.unwrap_or(0) > 0 {
            if line.starts_with("USER") {
                let _ = s.get_mut().write_all(b"331 password please\r\n").await;
            } else if line.starts_with("PASS") {
                *seen.lock().unwrap() = line.clone();
                match after {
                    AfterPass::Reply(r) => {
                        let _ = s.get_mut().write_all(r.as_bytes()).await;
                    }
                    AfterPass::Close => return,
                    AfterPass::Silence => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                }
            }
            line.clear();
        }
    });
    (port, got)
}

fn options(port: u16, password: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        "127.0.0.1",
        port,
        TlsMode::None,
        "user",
        SecretString::from(password.to_string()),
    );
    o.timeout = Duration::from_secs(2);
    o
}

/// Every way the error can be printed, with the sources of its chain.
fn renderings(e: &FtpError) -> Vec<String> {
    let mut out = vec![
        e.to_string(),
        format!("{e:?}"),
        format!("{e:#?}"),
        e.command().unwrap_or_default().to_string(),
        e.message().to_string(),
        e.hint().unwrap_or_default().to_string(),
    ];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        out.push(format!("{s:?}"));
        out.push(format!("{s:#?}"));
        source = s.source();
    }
    out
}

fn assert_redacted(case: &str, e: &FtpError, password: &str) {
    assert_eq!(e.command(), Some("PASS ****"), "{case}: {e}");
    assert!(e.to_string().contains("PASS ****"), "{case}: {e}");
    for shown in renderings(e) {
        assert!(
            !shown.contains(password),
            "{case}: password shown in {shown}"
        );
    }
}

/// A trace subscriber for this thread that writes into a buffer.
fn capture_trace() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buf)
}

/// The scripted failures, one case each; all run, then every failing case is named.
#[tokio::test]
async fn every_pass_failure_shows_pass_stars_only() {
    let cases: [(&str, AfterPass, FtpErrorKind); 5] = [
        (
            "reply 530",
            AfterPass::Reply("530 Login incorrect.\r\n"),
            FtpErrorKind::Login,
        ),
        (
            "reply 500",
            AfterPass::Reply("500 What?\r\n"),
            FtpErrorKind::Login,
        ),
        (
            "reply 421",
            AfterPass::Reply("421 Too many users, try later.\r\n"),
            FtpErrorKind::Transient,
        ),
        ("connection lost", AfterPass::Close, FtpErrorKind::Transient),
        ("timeout", AfterPass::Silence, FtpErrorKind::Transient),
    ];
    let (_guard, trace) = capture_trace();
    let mut failed = Vec::new();
    for (case, after, kind) in cases {
        let (port, got) = scripted_server(after).await;
        let outcome = tokio::spawn(async move {
            let err = FtpConnection::connect(&options(port, PASSWORD))
                .await
                .err()
                .unwrap_or_else(|| panic!("{case}: login succeeded"));
            assert_eq!(err.kind(), kind, "{case}: {err}");
            assert_redacted(case, &err, PASSWORD);
            assert_eq!(
                *got.lock().unwrap(),
                format!("PASS {PASSWORD}\r\n"),
                "{case}"
            );
        })
        .await;
        if let Err(e) = outcome {
            failed.push(format!("{case}: {e}"));
        }
    }
    let trace = String::from_utf8_lossy(&trace.lock().unwrap()).into_owned();
    if trace.contains(PASSWORD) {
        failed.push("trace: the password was traced".into());
    }
    if !trace.contains("> PASS ****") {
        failed.push(format!("trace: no `> PASS ****` line in {trace}"));
    }
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}

/// A password with CR LF would end `PASS` early and send the rest as a command: refused before
/// anything is sent, and the error shows neither part.
#[tokio::test]
async fn a_password_with_a_line_break_is_refused_unshown() {
    let password = "first-half\r\nDELE important";
    let (port, got) = scripted_server(AfterPass::Reply("230 ok\r\n")).await;
    let err = FtpConnection::connect(&options(port, password))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::Invalid, "{err}");
    assert_redacted("line break", &err, "first-half");
    for shown in renderings(&err) {
        assert!(!shown.contains("DELE"), "{shown}");
    }
    assert_eq!(*got.lock().unwrap(), "", "nothing of PASS was sent");
}

/// A real server refusing the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_servers_530_shows_pass_stars_only() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let mut o = options(server.port, PASSWORD);
    o.username = server.user.clone();
    o.timeout = Duration::from_secs(15);
    let err = FtpConnection::connect(&o).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::Login, "{err}");
    assert_redacted("in-process 530", &err, PASSWORD);
}
