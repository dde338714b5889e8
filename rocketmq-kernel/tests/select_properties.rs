//! Properties of queue selection: round robin is fair from any start, a
//! retry never returns to the failed broker while another exists, and key
//! hashing ignores everything but the key.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rocketmq_kernel::PublishInfo;
use rocketmq_kernel::fault::{FaultConfig, FaultStrategy};
use rocketmq_kernel::select::{RoundRobin, SelectByShardingKey, select_queue};
use rocketmq_model::route::perm;
use rocketmq_model::{BrokerData, Message, MessageQueue, QueueData, TopicRouteData};

/// A topic with `nums[i]` write queues on broker `b{i}`.
fn publish(nums: &[i32], start: u32) -> PublishInfo {
    let name = |i: usize| format!("b{i}");
    let route = TopicRouteData {
        queue_datas: nums
            .iter()
            .enumerate()
            .map(|(i, n)| QueueData {
                broker_name: name(i),
                read_queue_nums: *n,
                write_queue_nums: *n,
                perm: perm::READ | perm::WRITE,
                topic_sys_flag: 0,
            })
            .collect(),
        broker_datas: (0..nums.len())
            .map(|i| BrokerData {
                broker_name: name(i),
                broker_addrs: BTreeMap::from([(0, format!("{}:10911", name(i)))]),
                ..BrokerData::default()
            })
            .collect(),
        ..TopicRouteData::default()
    };
    PublishInfo::with_index("T", Arc::new(route), RoundRobin::starting_at(start))
}

proptest! {
    #[test]
    fn round_robin_gives_every_queue_its_turn(
        nums in prop::collection::vec(1..6_i32, 1..5),
        start in any::<u32>(),
        rounds in 1..4_usize,
    ) {
        let info = publish(&nums, start);
        let len = info.queues().len();
        let mut counts: HashMap<MessageQueue, usize> = HashMap::new();
        for _ in 0..len * rounds {
            *counts.entry(info.next_queue().unwrap().clone()).or_default() += 1;
        }
        prop_assert_eq!(counts.len(), len);
        prop_assert!(counts.values().all(|&n| n == rounds));
    }

    #[test]
    fn a_retry_avoids_the_failed_broker_while_another_exists(
        nums in prop::collection::vec(1..4_i32, 2..5),
        start in any::<u32>(),
        failed in 0..4_usize,
        enabled in any::<bool>(),
        isolated in prop::collection::vec(any::<bool>(), 4),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let info = publish(&nums, start);
            let strategy = FaultStrategy::new(FaultConfig::java_5x(enabled));
            for (i, isolate) in isolated.iter().enumerate().take(nums.len()) {
                if *isolate {
                    strategy.record_failure(&format!("b{i}"), Duration::from_millis(1));
                }
            }
            let failed = format!("b{}", failed % nums.len());
            for _ in 0..10 {
                let chosen = strategy.select_queue(&info, Some(&failed)).unwrap();
                prop_assert_ne!(&chosen.broker_name, &failed);
            }
            Ok(())
        })?;
    }

    #[test]
    fn one_sharding_key_one_queue(key in "[a-zA-Z0-9-]{1,24}", body in ".{0,16}", flag in any::<i32>()) {
        let queues: Vec<MessageQueue> = (0..8).map(|id| MessageQueue::new("T", "b", id)).collect();
        let message = |body: &str, flag: i32| {
            Message::builder("T").body(body.to_owned()).sharding_key(key.clone()).build().map(|mut m| {
                m.flag = flag;
                m
            })
        };
        let a = message(&body, flag).unwrap();
        let b = message("other", 0).unwrap();
        prop_assert_eq!(
            select_queue(&SelectByShardingKey, &queues, &a),
            select_queue(&SelectByShardingKey, &queues, &b)
        );
    }
}
