//! Test support shared by the end-to-end suites.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each suite uses a part; a failed step is a failed test

pub mod fake_kube;
pub mod kube_e2e;
pub mod pod_security;
pub mod server;
pub mod validate;
