//! Test-only helpers shared by integration tests.
#![allow(dead_code)]

pub mod redis_server;
