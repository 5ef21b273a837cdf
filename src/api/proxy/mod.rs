//! Pull-through proxies for package registries.

pub mod npm;
