#![no_main]
//! The handshake request, and the choice of a protocol from it.

use libfuzzer_sys::fuzz_target;
use signal_core::{HandshakeRequest, ProtocolSet, TransferFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = HandshakeRequest::parse(data) else {
        return;
    };
    let set = ProtocolSet::default();
    for format in [TransferFormat::Text, TransferFormat::Binary] {
        let _ = set.select_for(&request, &[format]);
    }
    // What parses writes back as a record that parses to the same request.
    let record = request.to_record();
    let again =
        HandshakeRequest::parse(&record[..record.len() - 1]).expect("a written handshake parses");
    assert_eq!(again, request);
});
