//! QuantumVault: a security gateway for HTTP APIs, built on Pingora.
//!
//! Where things live: [`config`] (YAML in, validated settings out), [`policy`] (the running
//! snapshot and route selection), [`proxy`] (the `ProxyHttp` phases), [`upstream`] (pools,
//! health), [`admin`] (the admin port), [`telemetry`] (metrics, access log), [`reload`] (hot
//! reload), [`demo`] (the demo command and its echo upstream), [`server`] (assembly).

#![forbid(unsafe_code)]

pub mod admin;
pub mod apikey;
pub mod background;
pub mod canonical;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod demo;
pub mod errors;
pub mod filters;
pub mod held;
pub mod inspect;
pub mod integrity;
pub mod keys_cli;
pub mod kms;
pub mod log_cli;
pub mod policy;
#[cfg(test)]
mod prop;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod telemetry;
pub mod text;
pub mod upstream;
pub mod usage;
