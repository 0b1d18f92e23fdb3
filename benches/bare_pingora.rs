//! The benchmark baseline: a bare Pingora pass-through proxy with the gateway's tuning (mimalloc,
//! `work_stealing: false`, same thread count), so a ratio measures the gateway's own work.
//!
//! `cargo run --release --example bare_pingora -- LISTEN UPSTREAM THREADS`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:18081".into());
    let upstream = args.get(2).cloned().unwrap_or_else(|| "127.0.0.1:18900".into());
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let mut conf = ServerConf::default();
    conf.threads = threads;
    conf.work_stealing = false;
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
