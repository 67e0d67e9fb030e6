#![no_main]
//! Every message the Redis backplane reads from a channel: ASP.NET Core's
//! (invocation, group command, ack, completion) and signal's own (listing,
//! relay, tunnel). Whatever decodes encodes back to bytes that decode the same.

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use signal_redis::envelope::{
    CompletionEnvelope, GroupCommand, InvocationEnvelope, ListRequest, RelayReply, RelayRequest,
    TunnelFrame, decode_ack, decode_list_reply, encode_ack, encode_list_reply,
};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(envelope) = InvocationEnvelope::decode(&bytes) {
        let again = InvocationEnvelope::decode(&Bytes::from(envelope.encode()));
        assert_eq!(again.as_ref(), Ok(&envelope));
    }
    if let Ok(command) = GroupCommand::decode(&bytes) {
        assert_eq!(
            GroupCommand::decode(&Bytes::from(command.encode())),
            Ok(command)
        );
    }
    if let Ok(id) = decode_ack(&bytes) {
        assert_eq!(decode_ack(&Bytes::from(encode_ack(id))), Ok(id));
    }
    if let Ok(completion) = CompletionEnvelope::decode(&bytes) {
        assert_eq!(
            CompletionEnvelope::decode(&Bytes::from(completion.encode())),
            Ok(completion)
        );
    }
    if let Ok(request) = ListRequest::decode(&bytes) {
        assert_eq!(
            ListRequest::decode(&Bytes::from(request.encode())),
            Ok(request)
        );
    }
    if let Ok((id, items)) = decode_list_reply(&bytes) {
        assert_eq!(
            decode_list_reply(&Bytes::from(encode_list_reply(id, &items))),
            Ok((id, items))
        );
    }
    if let Ok(request) = RelayRequest::decode(&bytes) {
        assert_eq!(
            RelayRequest::decode(&Bytes::from(request.encode())),
            Ok(request)
        );
    }
    if let Ok((id, reply)) = RelayReply::decode(&bytes) {
        assert_eq!(
            RelayReply::decode(&Bytes::from(reply.encode(id))),
            Ok((id, reply))
        );
    }
    if let Ok(frame) = TunnelFrame::decode(&bytes) {
        assert_eq!(TunnelFrame::decode(&Bytes::from(frame.encode())), Ok(frame));
    }
});
