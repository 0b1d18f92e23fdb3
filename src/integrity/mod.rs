//! Integrity proofs: RFC 9530 `Content-Digest`, RFC 9421 HTTP Message Signatures over responses
//! bound to their requests, the public key directory (JWKS), and the verifier behind
//! `quantumvault verify`.
pub mod anchor;
pub mod batch;
pub mod batcher;
pub mod digest;
pub mod hmac;
pub mod httpsig;
pub mod jwks;
pub mod merkle;
pub mod sig;
pub mod spill;
pub mod tlog;
