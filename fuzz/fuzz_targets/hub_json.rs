#![no_main]
//! The JSON hub protocol: record framing, parsing, and writing back.

#[path = "protocol_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use signal_core::JsonHubProtocol;

fuzz_target!(|data: &[u8]| common::check(&JsonHubProtocol, data));
