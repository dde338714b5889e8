//! Feeds arbitrary bytes to the frame decoder: it must never panic, never hand
//! back a frame over the limit, and always make progress or ask for more input;
//! what it decodes, encoded again, decodes to the same command.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rocketmq_remoting::codec::frame;

/// A small limit so that the fuzzer reaches the "too large" path cheaply.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match frame::decode(&mut buf, LIMIT) {
            Ok(Some(cmd)) => {
                assert!(cmd.body.len() <= LIMIT);
                assert!(buf.len() < before, "a decoded frame consumes input");
                // What decodes encodes again to the same command, or fails
                // with a typed error: text read lossily (bad UTF-8 becomes
                // U+FFFD, three bytes) can grow a binary header's key past
                // its 32767-byte limit.
                let mut out = BytesMut::new();
                if frame::encode(&cmd, &mut out).is_ok() {
                    let again = frame::decode(&mut out, usize::MAX)
                        .expect("a re-encoded command decodes")
                        .expect("a re-encoded command is whole");
                    assert!(again == cmd, "the re-encoded command differs");
                    assert!(out.is_empty(), "a re-encoded frame is read whole");
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
