//! The PULL_MESSAGE header of a push consumer's pull (Java's
//! `DefaultMQPushConsumerImpl#pullMessage` and `PullAPIWrapper#pullKernelImpl`,
//! PROTOCOL.md §3.4 and §8.6).

use rocketmq_model::header::PullMessageRequestHeader;
use rocketmq_model::message::sysflag::pull;
use rocketmq_model::{MessageQueue, SubscriptionData};

use crate::consumer_options::ConsumerOptions;

/// What varies between two pulls of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PullAt {
    /// The offset to pull from.
    pub(crate) offset: i64,
    /// The in-memory consume offset to commit with the pull (clustering
    /// only; `None` when there is none or it is 0).
    pub(crate) commit: Option<i64>,
    /// Whether the pull goes to a slave (which cannot take a commit).
    pub(crate) from_slave: bool,
}

/// The header of a long-polling pull of `mq`: SUSPEND always; COMMIT_OFFSET
/// with the offset when there is one to commit and the pull goes to the
/// master; SUBSCRIPTION with the expression only when
/// `post_subscription_when_pull` (the broker otherwise uses the
/// heartbeat's subscription, as Java relies on).
pub(crate) fn header(
    options: &ConsumerOptions,
    mq: &MessageQueue,
    subscription: &SubscriptionData,
    at: PullAt,
) -> PullMessageRequestHeader {
    let commit = at.commit.filter(|offset| *offset > 0 && !at.from_slave);
    let post_subscription = options.post_subscription_when_pull && !subscription.class_filter_mode;
    let sys_flag = pull::build(
        commit.is_some(),
        true,
        post_subscription,
        subscription.class_filter_mode,
    );
    PullMessageRequestHeader {
        consumer_group: options.group.clone(),
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        queue_offset: at.offset,
        max_msg_nums: options.pull_batch_size,
        sys_flag,
        commit_offset: commit.unwrap_or(0),
        suspend_timeout_millis: i64::try_from(options.broker_suspend_max_time.as_millis())
            .unwrap_or(i64::MAX),
        subscription: post_subscription.then(|| subscription.sub_string.clone()),
        sub_version: subscription.sub_version,
        expression_type: Some(subscription.expression_type.as_str().to_owned()),
        max_msg_bytes: Some(options.pull_batch_size_in_bytes),
        request_source: None,
        proxy_forward_client_id: None,
        broker_name: Some(mq.broker_name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::body::ExpressionType;

    use super::*;

    fn subscription() -> SubscriptionData {
        SubscriptionData::from_expression("T", "A || B", ExpressionType::Tag).unwrap()
    }

    #[test]
    fn commit_flag_only_with_a_positive_offset_and_a_master() {
        let options = ConsumerOptions::new("cg");
        let mq = MessageQueue::new("T", "broker-a", 3);
        let at = PullAt {
            offset: 40,
            commit: Some(17),
            from_slave: false,
        };
        let header = header(&options, &mq, &subscription(), at);
        assert_eq!(header.sys_flag, pull::COMMIT_OFFSET | pull::SUSPEND);
        assert_eq!(
            (header.commit_offset, header.queue_offset, header.queue_id),
            (17, 40, 3)
        );
        assert_eq!(header.suspend_timeout_millis, 15_000);
        assert_eq!(header.max_msg_nums, 32);
        assert_eq!(header.max_msg_bytes, Some(256 * 1024));
        assert_eq!(header.subscription, None);
        assert_eq!(header.expression_type.as_deref(), Some("TAG"));
        assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
        for at in [
            PullAt { commit: None, ..at },
            PullAt {
                commit: Some(0),
                ..at
            },
            PullAt {
                from_slave: true,
                ..at
            },
        ] {
            let header = super::header(&options, &mq, &subscription(), at);
            assert_eq!(header.sys_flag, pull::SUSPEND, "{at:?}");
            assert_eq!(header.commit_offset, 0);
        }
    }

    #[test]
    fn subscription_is_posted_only_when_configured() {
        let options = ConsumerOptions {
            post_subscription_when_pull: true,
            ..ConsumerOptions::new("cg")
        };
        let mq = MessageQueue::new("T", "broker-a", 0);
        let at = PullAt {
            offset: 0,
            commit: None,
            from_slave: false,
        };
        let mut subscription = subscription();
        subscription.sub_version = 1_700_000_000_000;
        let header = header(&options, &mq, &subscription, at);
        assert_eq!(header.sys_flag, pull::SUSPEND | pull::SUBSCRIPTION);
        assert_eq!(header.subscription.as_deref(), Some("A || B"));
        assert_eq!(header.sub_version, 1_700_000_000_000);
    }
}
