//! What the two hub protocol targets share: split the input as the protocol's
//! framing does, parse each message, and check that whatever parses writes
//! back, parses again, and writes the same bytes the second time.

use signal_core::HubProtocol;

pub fn check(protocol: &dyn HubProtocol, data: &[u8]) {
    let mut reader = protocol.framing().reader(32 * 1024);
    let Ok(records) = reader.push(data) else {
        return;
    };
    for record in records {
        let Ok(Some(message)) = protocol.parse(&record) else {
            continue;
        };
        let Ok(written) = protocol.to_bytes(&message) else {
            continue;
        };
        // The written bytes are framed: read them back as a client would.
        let mut again = protocol.framing().reader(usize::MAX);
        let records = again
            .push(&written)
            .expect("what the protocol writes is framed correctly");
        assert_eq!(records.len(), 1, "one message written, one framed");
        let reparsed = protocol
            .parse(&records[0])
            .expect("what the protocol writes parses")
            .expect("what the protocol writes is a known message");
        let rewritten = protocol
            .to_bytes(&reparsed)
            .expect("a message read back writes");
        assert_eq!(written, rewritten, "writing is stable after one round trip");
    }
}
