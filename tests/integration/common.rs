//! Test harness: real gateway processes on loopback, real upstreams, real HTTP clients.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use quantumvault::demo::upstream::EchoServer;

/// A loopback address no other caller in this test process was given: tests run in parallel,
/// and a port freed for a moment (a gateway restarting) must not go to another test, nor may
/// the listener and the admin port of one gateway get the same one.
pub fn free_addr() -> SocketAddr {
    reserved_listener().local_addr().expect("addr")
}

/// A loopback listener on a port no other caller in this test process was given.
pub fn reserved_listener() -> TcpListener {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        if reserve(l.local_addr().expect("addr").port()) {
            return l;
        }
    }
}

/// Marks `port` as taken by this test process; false if it already was.
pub fn reserve(port: u16) -> bool {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    given.get_or_insert_with(HashSet::new).insert(port)
}

/// An echo upstream on a port no other test will be given (tests stop and restart upstreams on
/// their address).
pub fn echo(name: &str) -> EchoServer {
    loop {
        let e = EchoServer::start(name, "127.0.0.1:0".parse().unwrap()).expect("echo upstream");
        if reserve(e.addr().port()) {
            return e;
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_quantumvault")
}

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Extra environment for the gateway process (set before `spawn`).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build()
}

pub fn send(agent: &ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(move |v| (n.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = String::new();
    resp.into_reader()
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(Response { status, headers, body })
}

pub fn get(url: &str) -> Response {
    send(&agent(), "GET", url, &[]).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

impl Gateway {
    /// Writes gateway.yaml (plus `policies/main.yaml` = `policy`) and starts `quantumvault run`.
    pub fn start(policy: &str) -> Gateway {
        Self::start_with(policy, "")
    }

    pub fn start_with(policy: &str, extra_gateway_yaml: &str) -> Gateway {
        Self::start_with_pre(policy, extra_gateway_yaml, |_| {})
    }

    /// As `start_with`, running `pre` with the gateway.yaml path before the process starts.
    pub fn start_with_pre(policy: &str, extra_gateway_yaml: &str, pre: impl FnOnce(&Path)) -> Gateway {
        Self::start_full(policy, extra_gateway_yaml, pre, &[])
    }

    /// As `start_with_pre`, with extra environment variables for the gateway process.
    pub fn start_full(
        policy: &str,
        extra_gateway_yaml: &str,
        pre: impl FnOnce(&Path),
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = free_addr();
        let admin = free_addr();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/main.yaml"), policy).unwrap();
        std::fs::write(
            dir.path().join("gateway.yaml"),
            format!(
                "listeners:\n  - address: {listen}\nadmin:\n  address: {admin}\nworker_threads: 2\ndata_dir: data\n\
log:\n  access_log: access.log\nshutdown:\n  grace_period: 1s\n  graceful_shutdown_timeout: 2s\n\
policies:\n  - policies\nreload:\n  debounce: 100ms\n{extra_gateway_yaml}"
            ),
        )
        .unwrap();
        pre(&dir.path().join("gateway.yaml"));
        let mut gw = Gateway {
            dir,
            listen,
            admin,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
        };
        gw.spawn();
        gw
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(self.dir.path().join("gateway.yaml"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gateway");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("gateway exited early ({status}): {}", self.stderr());
                }
            }
            let ok = std::net::TcpStream::connect(self.listen).is_ok()
                && send(&agent(), "GET", &self.admin_url("/health"), &[]).is_ok();
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "gateway not ready: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Rewrites the policy file the way an editor does (write a temp file, rename over).
    pub fn write_policy(&self, text: &str) {
        let tmp = self.path("policies/.main.yaml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path("policies/main.yaml")).unwrap();
    }

    pub fn health(&self) -> serde_json::Value {
        get(&self.admin_url("/health")).json()
    }

    pub fn generation(&self) -> u64 {
        self.health()["policy"]["generation"].as_u64().unwrap()
    }

    /// Waits until `cond` holds, up to `secs` seconds.
    pub fn wait_for(&self, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the gateway (SIGTERM) and starts it again with the files as they are now.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clean exit: {status}");
        self.spawn();
    }

    /// SIGTERM and wait for exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn policy_one(upstream: &str, peers: &[SocketAddr], extra_upstream: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "upstreams:\n  - name: {upstream}\n    peers: [{}]\n{extra_upstream}routes:\n  - name: all\n    path_prefix: /\n    upstream: {upstream}\n",
        peers.join(", ")
    )
}

/// The key ids of a JWKS, in order.
pub fn key_ids(jwks: &serde_json::Value) -> Vec<&str> {
    jwks["keys"]
        .as_array()
        .expect("a JWKS has a keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid"))
        .collect()
}

/// Creates the keystore for the gateway.yaml at `conf` with `quantumvault keys init` (a
/// `start_with_pre` hook: the keystore must exist before a signing gateway starts).
pub fn keys_init(conf: &Path) {
    let out = Command::new(bin())
        .args(["keys", "init", "--config"])
        .arg(conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

pub fn run_check(config: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends raw bytes and returns the response head and body as text (for requests no client
/// library would send: duplicate Content-Length, bare control characters, ...).
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                // One response is enough: stop once its JSON body (gateway errors) is complete.
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    });
                    if len.is_some_and(|l| body.len() >= l) {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn status_of(raw_response: &str) -> u16 {
    raw_response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
