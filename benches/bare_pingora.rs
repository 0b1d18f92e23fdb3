//! The benchmark baseline: a bare Pingora pass-through proxy with the gateway's tuning (mimalloc,
//! `work_stealing: false`, same thread count), so a ratio measures the gateway's own work.
//!
//! `cargo run --release --example bare_pingora -- LISTEN UPSTREAM THREADS [forwarding]`
//!
//! With `forwarding`, it also does the least the gateway must do as any forwarding proxy, written
//! as plainly as Pingora allows: upstream read/write timeouts, X-Forwarded-For/-Proto/-Host and
//! a fresh X-Request-Id on the upstream request, the same X-Request-Id on the response. It
//! measures what that floor costs before any routing, filtering, metrics or logging.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: String,
    forwarding: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = String;
    fn new_ctx(&self) -> String {
        String::new()
    }
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut String) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        if self.forwarding {
            peer.options.read_timeout = Some(std::time::Duration::from_secs(30));
            peer.options.write_timeout = Some(std::time::Duration::from_secs(30));
        }
        Ok(Box::new(peer))
    }
    async fn upstream_request_filter(&self, s: &mut Session, req: &mut RequestHeader, id: &mut String) -> Result<()> {
        if self.forwarding {
            *id = format!("{:032x}", rand::random::<u128>());
            if let Some(addr) = s.client_addr().and_then(|a| a.as_inet()) {
                req.insert_header("X-Forwarded-For", addr.ip().to_string())?;
            }
            req.insert_header("X-Forwarded-Proto", "http")?;
            if let Some(host) = s.req_header().headers.get("host").cloned() {
                req.insert_header("X-Forwarded-Host", host)?;
            }
            req.insert_header("X-Request-Id", id.as_str())?;
        }
        Ok(())
    }
    async fn response_filter(&self, _s: &mut Session, resp: &mut ResponseHeader, id: &mut String) -> Result<()> {
        if self.forwarding {
            resp.insert_header("X-Request-Id", id.as_str())?;
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:18081".into());
    let upstream = args.get(2).cloned().unwrap_or_else(|| "127.0.0.1:18900".into());
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let forwarding = args.get(4).is_some_and(|m| m == "forwarding");
    let mut conf = ServerConf::default();
    conf.threads = threads;
    conf.work_stealing = false;
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream, forwarding });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
