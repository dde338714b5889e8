//! Feeds arbitrary bytes to the frame decoder: it must never panic, never hand
//! back a frame over the limit, and always make progress or ask for more input.
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
                // What decodes must encode again.
                let mut out = BytesMut::new();
                frame::encode(&cmd, &mut out).expect("a decoded command re-encodes");
            }
            Ok(None) | Err(_) => break,
        }
    }
});
