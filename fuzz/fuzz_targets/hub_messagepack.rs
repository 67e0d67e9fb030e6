#![no_main]
//! The MessagePack hub protocol: length-prefix framing, parsing, and writing back.

#[path = "protocol_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use signal_core::MessagePackHubProtocol;

fuzz_target!(|data: &[u8]| common::check(&MessagePackHubProtocol, data));
