//! Integration tests: one binary, so the gateway and its dependencies build once.

mod access;
mod alerts;
mod batch;
mod canonical;
mod cluster;
mod common;
mod core;
mod engines;
mod inspect_corpus;
mod inspection;
mod monitoring;
mod reload;
mod signing;
mod slow_clients;
mod smuggling;
mod timeouts;
mod tlog;
mod tls;
mod upstreams;
