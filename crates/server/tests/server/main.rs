//! The server's integration tests, one test binary (one link, and tests of every module run
//! side by side instead of one file after another): each module is one area — the API, accounts,
//! OIDC, cluster nodes, reliability under store outages… — against real parts (a real Docker
//! engine, moto_server's S3, an OpenID provider). The browser tests are `tests/browser`.
//! Run one area with `cargo test -p spawnit-server --test server api::`.

mod common;

mod accounts;
mod api;
mod autoscale;
mod cluster_events;
mod nodes;
mod oidc;
mod oneclick;
mod reconcile;
mod reliability;
mod schemathesis;
mod security;
mod selfdeploy;
mod sse_lag;
mod store_outage;
