//! `moto_server`: a real AWS API emulator (PyPI `moto[server]`), for the aws credential backend.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOTO_HINT: &str = "run `scripts/install-test-deps` (as root) to install moto_server into $HOME/.cache/siteport-tools/venv, or set SITEPORT_MOTO_SERVER";

/// Where `moto_server` is: `SITEPORT_MOTO_SERVER`, else `$SITEPORT_TOOLS/venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    std::env::var_os("SITEPORT_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools_dir().join("venv/bin/moto_server"))
}

/// A `moto_server` on 127.0.0.1 and a free port, killed on drop. Each instance has its own
/// empty state.
pub struct MotoServer {
    child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts moto and waits until it accepts connections. Panics naming the install script
    /// when moto is not installed.
    pub fn start() -> MotoServer {
        Self::start_with_env(&[])
    }

    /// Starts moto with extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes
    /// moto check access keys and refuse unknown ones.
    pub fn start_with_env(env: &[(&str, &str)]) -> MotoServer {
        let bin = moto_server_path();
        if !bin.is_file() {
            panic!("moto_server not found at {} — {MOTO_HINT}", bin.display());
        }
        let port = crate::free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} — {MOTO_HINT}", bin.display()));
        let mut server = MotoServer { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited with {status} before listening on {addr}");
            }
            if Instant::now() > deadline {
                panic!("moto_server did not listen on {addr} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment an AWS client needs to talk to this moto: fake static keys, a region
    /// and the endpoint (moto accepts any key).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
