//! Feeds arbitrary bytes to the stored-message record decoder (pull bodies):
//! it must never panic and never allocate beyond its caps.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rocketmq_model::message::{decode_batch, decode_records};

fuzz_target!(|data: &[u8]| {
    let _ = decode_records(Bytes::copy_from_slice(data));
    let _ = decode_batch(Bytes::copy_from_slice(data), "FuzzTopic");
});
