//! The web UI in a real browser (Chromium over WebDriver), one test binary of its own: a
//! browser's page loads are aborted when Docker adds or removes network interfaces
//! (`ERR_NETWORK_CHANGED`), so these tests do not run beside the server's other tests, which
//! create networks all the time; they run side by side with each other. Run one with
//! `cargo test -p spawnit-server --test browser nodes::`.

#[path = "../server/common/mod.rs"]
mod common;

mod flow;
mod nodes;
mod scale;
