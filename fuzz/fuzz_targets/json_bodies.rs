//! Feeds arbitrary bytes to every JSON body decoder, including the tolerant
//! readers of fastjson's non-standard maps: errors are fine, panics are not,
//! and neither are allocations a few bytes can make huge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocketmq_model::body::{
    BatchAckMessageRequestBody, ConsumeMessageDirectlyResult, ConsumerListBody,
    ConsumerRunningInfo, GetConsumerStatusBody, HeartbeatData, JsonBody, LockBatchRequestBody,
    LockBatchResponseBody, ResetOffsetBody,
};
use rocketmq_model::route::{ClusterInfo, TopicRouteData};

fn decode_reencode<B: JsonBody>(data: &[u8]) {
    if let Ok(body) = B::decode(data) {
        let _ = body.encode();
    }
}

fuzz_target!(|data: &[u8]| {
    decode_reencode::<TopicRouteData>(data);
    // A decoded route's queue counts are bounded, so making its queues is too.
    if let Ok(route) = TopicRouteData::decode(data) {
        let _ = route.publish_queues("T");
        let _ = route.subscribe_queues("T");
    }
    decode_reencode::<ClusterInfo>(data);
    decode_reencode::<HeartbeatData>(data);
    decode_reencode::<ConsumerRunningInfo>(data);
    decode_reencode::<ResetOffsetBody>(data);
    decode_reencode::<GetConsumerStatusBody>(data);
    decode_reencode::<LockBatchRequestBody>(data);
    decode_reencode::<LockBatchResponseBody>(data);
    decode_reencode::<ConsumeMessageDirectlyResult>(data);
    decode_reencode::<ConsumerListBody>(data);
    // Its bit sets are as large as the Base64 that carried them, no larger.
    decode_reencode::<BatchAckMessageRequestBody>(data);
});
