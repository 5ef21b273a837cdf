//! Bazel's gRPC remote cache (REAPI v2) on the same store as its HTTP cache.

#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
#[rustfmt::skip]
pub mod gen;
