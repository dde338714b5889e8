//! Answers the requests brokers send to the client (PROTOCOL.md §2.6, §3.8,
//! §3.9). The handler runs on the connection's reader; work that may be slow
//! (a user's transaction check or listener, an offset reset) runs on the
//! instance's own tasks, in a bounded lane of its kind (`lanes`), and the
//! handler never waits for room in one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use rocketmq_model::body::{GetConsumerStatusBody, ResetOffsetBody, property_keys};
use rocketmq_model::header::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyResultRequestHeader,
    GetConsumerRunningInfoRequestHeader, GetConsumerStatusRequestHeader,
    NotifyConsumerIdsChangedRequestHeader, ReplyMessageRequestHeader, ResetOffsetRequestHeader,
};
use rocketmq_model::message::{decode_record, property};
use rocketmq_model::{MessageExt, RequestCode, ResponseCode};
use rocketmq_remoting::{Connection, InboundService, RemotingCommand, RemotingError};
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use super::lanes::Lane;
use super::{ClientInstance, Inner, replies};

/// The client version reported in running info (the Java version whose
/// ordinal the client sends).
pub(crate) const CLIENT_VERSION_NAME: &str = "V5_3_3";

/// The handler factory given to the instance's remoting client.
pub(super) fn factory(
    weak: Weak<Inner>,
) -> impl Fn(&Connection) -> InboundService + Send + Sync + 'static {
    move |conn: &Connection| {
        if let Some(inner) = weak.upgrade() {
            super::heartbeat::on_new_connection(&ClientInstance { inner }, conn.peer_addr());
        }
        let weak = weak.clone();
        let peer: Arc<str> = Arc::from(conn.peer_addr());
        BoxCloneSyncService::new(tower::service_fn(move |cmd: RemotingCommand| {
            let weak = weak.clone();
            let peer = peer.clone();
            async move { Ok::<_, RemotingError>(handle(weak, &peer, cmd).await) }
        }))
    }
}

async fn handle(weak: Weak<Inner>, peer: &str, cmd: RemotingCommand) -> RemotingCommand {
    let span = tracing::debug_span!(
        "broker_request",
        addr = peer,
        code = cmd.code,
        opaque = cmd.opaque
    );
    let Some(inner) = weak.upgrade() else {
        return system_error(&cmd, "the client is shut down".into());
    };
    let instance = ClientInstance { inner };
    async {
        let answer = dispatch(&instance, peer, &cmd).await;
        answer.unwrap_or_else(|error| system_error(&cmd, error.to_string()))
    }
    .instrument(span)
    .await
}

type Answer = Result<RemotingCommand, rocketmq_model::ModelError>;

async fn dispatch(instance: &ClientInstance, peer: &str, cmd: &RemotingCommand) -> Answer {
    match cmd.request_code() {
        RequestCode::CHECK_TRANSACTION_STATE => check_transaction(instance, peer, cmd),
        RequestCode::NOTIFY_CONSUMER_IDS_CHANGED => Ok(notify_ids_changed(instance, cmd)?),
        RequestCode::RESET_CONSUMER_CLIENT_OFFSET => reset_offset(instance, cmd),
        RequestCode::GET_CONSUMER_STATUS_FROM_CLIENT => consumer_status(instance, cmd),
        RequestCode::GET_CONSUMER_RUNNING_INFO => running_info(instance, cmd),
        RequestCode::CONSUME_MESSAGE_DIRECTLY => consume_directly(instance, cmd).await,
        RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT => push_reply(instance, cmd),
        _ => {
            tracing::warn!(code = cmd.code, "unsupported broker request");
            Ok(
                RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, cmd.opaque)
                    .with_remark(format!(" request type {} not supported", cmd.code)),
            )
        }
    }
}

fn success(cmd: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SUCCESS, cmd.opaque)
}

fn system_error(cmd: &RemotingCommand, remark: String) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SYSTEM_ERROR, cmd.opaque).with_remark(remark)
}

fn unknown_group(cmd: &RemotingCommand, group: &str) -> RemotingCommand {
    system_error(
        cmd,
        format!("The Consumer Group <{group}> not exist in this consumer"),
    )
}

fn decode_message(body: &Bytes) -> Result<MessageExt, rocketmq_model::ModelError> {
    decode_record(&mut body.clone())
}

/// Starts `work` in `lane` on the instance's tasks, without waiting; `None`
/// when the lane is full. The task's output is `None` once the instance
/// shuts down.
fn spawn_in<F>(
    instance: &ClientInstance,
    lane: &Lane,
    work: F,
) -> Option<tokio::task::JoinHandle<Option<F::Output>>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    lane.try_spawn(instance.task_tracker(), instance.cancellation_token(), work)
}

fn check_transaction(instance: &ClientInstance, peer: &str, cmd: &RemotingCommand) -> Answer {
    let header: CheckTransactionStateRequestHeader = cmd.decode_header()?;
    let msg = decode_message(&cmd.body)?;
    let group = msg
        .message
        .property(property::PGROUP)
        .unwrap_or_default()
        .to_owned();
    let Some(producer) = instance.producer(&group) else {
        tracing::warn!(group, "transaction check for a group with no producer here");
        return Ok(success(cmd));
    };
    tracing::debug!(group, msg_id = ?header.msg_id, "transaction check");
    let addr = peer.to_owned();
    let msg_id = header.msg_id.clone();
    let checks = &instance.inner().lanes.checks;
    let started = spawn_in(instance, checks, async move {
        producer.check_transaction(addr, header, msg).await;
    });
    if started.is_none() {
        // As Java's check executor rejecting: the broker asks again later.
        tracing::warn!(%group, ?msg_id, "too many transaction checks waiting; this one is skipped");
    }
    Ok(success(cmd))
}

fn notify_ids_changed(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: NotifyConsumerIdsChangedRequestHeader = cmd.decode_header()?;
    tracing::info!(group = %header.consumer_group, "consumer ids changed; rebalancing");
    instance.request_rebalance(Some(&header.consumer_group));
    Ok(success(cmd))
}

fn reset_offset(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: ResetOffsetRequestHeader = cmd.decode_header()?;
    let Some(consumer) = instance.consumer(&header.group) else {
        return Ok(unknown_group(cmd, &header.group));
    };
    let body = if cmd.body.is_empty() {
        ResetOffsetBody::default()
    } else {
        ResetOffsetBody::decode(&cmd.body)?
    };
    let offsets: HashMap<_, _> = body.offset_table.into_iter().collect();
    tracing::info!(group = %header.group, topic = %header.topic, queues = offsets.len(), "offset reset");
    let resets = &instance.inner().lanes.resets;
    let topic = header.topic.clone();
    let started = spawn_in(instance, resets, async move {
        consumer.reset_offset(&topic, offsets).await;
    });
    if started.is_none() {
        tracing::warn!(group = %header.group, topic = %header.topic, "too many offset resets waiting; refused");
        return Ok(busy(cmd, "offset resets"));
    }
    Ok(success(cmd))
}

fn consumer_status(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: GetConsumerStatusRequestHeader = cmd.decode_header()?;
    let table = instance
        .consumer(&header.group)
        .map(|consumer| consumer.consumer_status(&header.topic))
        .unwrap_or_default();
    let body = GetConsumerStatusBody {
        message_queue_table: table.into_iter().collect(),
        ..GetConsumerStatusBody::default()
    };
    Ok(success(cmd).with_body(body.encode()?))
}

fn running_info(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: GetConsumerRunningInfoRequestHeader = cmd.decode_header()?;
    let Some(consumer) = instance.consumer(&header.consumer_group) else {
        return Ok(unknown_group(cmd, &header.consumer_group));
    };
    let mut info = consumer.running_info();
    let properties = &mut info.properties;
    properties.insert(
        property_keys::PROP_NAMESERVER_ADDR.to_owned(),
        crate::config::namesrv_addr_string(&instance.namesrv_addrs()),
    );
    properties.insert(
        property_keys::PROP_CLIENT_VERSION.to_owned(),
        CLIENT_VERSION_NAME.to_owned(),
    );
    Ok(success(cmd).with_body(info.encode()?))
}

fn push_reply(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: ReplyMessageRequestHeader = cmd.decode_header()?;
    let reply = replies::reply_message(header, &cmd.body)?;
    let correlation_id = reply
        .message
        .property(property::CORRELATION_ID)
        .map(str::to_owned);
    if !instance.inner().replies.deliver(reply) {
        tracing::warn!(?correlation_id, "a reply matched no request (timed out?)");
    }
    Ok(success(cmd))
}

async fn consume_directly(instance: &ClientInstance, cmd: &RemotingCommand) -> Answer {
    let header: ConsumeMessageDirectlyResultRequestHeader = cmd.decode_header()?;
    let Some(consumer) = instance.consumer(&header.consumer_group) else {
        return Ok(unknown_group(cmd, &header.consumer_group));
    };
    let msg = decode_message(&cmd.body)?;
    let broker_name = header.broker_name.clone();
    let direct = &instance.inner().lanes.direct;
    let Some(task) = spawn_in(instance, direct, async move {
        consumer.consume_directly(msg, broker_name).await
    }) else {
        return Ok(busy(cmd, "direct consumptions"));
    };
    match task.await.ok().flatten() {
        Some(Some(result)) => Ok(success(cmd).with_body(result.encode()?)),
        // Java answers so for any consumer but a push consumer.
        Some(None) => Ok(unknown_group(cmd, &header.consumer_group)),
        None => Ok(system_error(cmd, "the client is shutting down".into())),
    }
}

/// SYSTEM_BUSY for a request whose lane is full.
fn busy(cmd: &RemotingCommand, what: &str) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SYSTEM_BUSY, cmd.opaque).with_remark(format!(
        "[REJECTREQUEST]system busy, too many {what} in progress"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use rocketmq_model::body::{
        ConsumeFromWhere, ConsumeMessageDirectlyResult, ConsumeType, ConsumerData, MessageModel,
    };
    use rocketmq_model::{ConsumerRunningInfo, MessageQueue};

    use super::*;
    use crate::config::ClientConfig;
    use crate::instance::ConsumerHandle;

    /// A consumer that only counts rebalances.
    #[derive(Default)]
    struct Counting {
        rebalances: AtomicUsize,
    }

    #[async_trait]
    impl ConsumerHandle for Counting {
        fn group(&self) -> &str {
            "cg"
        }
        fn heartbeat_data(&self) -> ConsumerData {
            ConsumerData {
                consume_from_where: ConsumeFromWhere::LastOffset,
                consume_type: ConsumeType::ConsumePassively,
                group_name: "cg".into(),
                message_model: MessageModel::Clustering,
                subscription_data_set: Vec::new(),
                unit_mode: false,
            }
        }
        fn subscribed_topics(&self) -> Vec<String> {
            Vec::new()
        }
        async fn rebalance(&self) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
        async fn persist_offsets(&self) {}
        async fn reset_offset(&self, _topic: &str, _offsets: HashMap<MessageQueue, i64>) {}
        fn running_info(&self) -> ConsumerRunningInfo {
            ConsumerRunningInfo::default()
        }
        fn consumer_status(&self, _topic: &str) -> HashMap<MessageQueue, i64> {
            HashMap::new()
        }
        async fn consume_directly(
            &self,
            _msg: MessageExt,
            _broker_name: Option<String>,
        ) -> Option<ConsumeMessageDirectlyResult> {
            Some(ConsumeMessageDirectlyResult::default())
        }
    }

    fn instance(name: &str) -> crate::instance::InstanceLease {
        let mut config = ClientConfig::new(["127.0.0.1:1"]);
        config.instance_name = name.into();
        config.client_ip = Some("10.0.0.1".parse().unwrap());
        ClientInstance::acquire(config).unwrap()
    }

    fn request(code: RequestCode, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(code);
        cmd.opaque = 42;
        for (k, v) in fields {
            cmd.ext_fields.insert((*k).to_owned(), (*v).to_owned());
        }
        cmd
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_codes_are_not_supported_as_java_says() {
        let lease = instance("processor_unknown_code");
        let cmd = request(RequestCode(9999), &[]);
        let answer = dispatch(&lease, "b:10911", &cmd).await.unwrap();
        assert_eq!(
            answer.response_code(),
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED
        );
        assert_eq!(answer.opaque, 42);
        assert_eq!(
            answer.remark.as_deref(),
            Some(" request type 9999 not supported")
        );
        lease.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_groups_get_system_error_with_javas_remark() {
        let lease = instance("processor_unknown_group");
        for code in [
            RequestCode::GET_CONSUMER_RUNNING_INFO,
            RequestCode::CONSUME_MESSAGE_DIRECTLY,
        ] {
            let cmd = request(code, &[("consumerGroup", "nope"), ("clientId", "c")]);
            let answer = dispatch(&lease, "b:10911", &cmd).await.unwrap();
            assert_eq!(answer.response_code(), ResponseCode::SYSTEM_ERROR);
            assert_eq!(
                answer.remark.as_deref(),
                Some("The Consumer Group <nope> not exist in this consumer")
            );
            assert!(answer.body.is_empty());
        }
        lease.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_request_is_a_system_error_not_a_panic() {
        let lease = instance("processor_malformed");
        let cmd = request(
            RequestCode::CHECK_TRANSACTION_STATE,
            &[("tranStateTableOffset", "x")],
        );
        let answer = handle(Arc::downgrade(lease.inner()), "b:10911", cmd).await;
        assert_eq!(answer.response_code(), ResponseCode::SYSTEM_ERROR);
        assert_eq!(answer.opaque, 42);
        lease.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn notify_rebalances_only_the_named_group() {
        let lease = instance("processor_notify");
        let consumer = Arc::new(Counting::default());
        lease.register_consumer(consumer.clone()).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let before = consumer.rebalances.load(Ordering::SeqCst);
        let other = request(
            RequestCode::NOTIFY_CONSUMER_IDS_CHANGED,
            &[("consumerGroup", "other")],
        );
        dispatch(&lease, "b:10911", &other).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(consumer.rebalances.load(Ordering::SeqCst), before);
        let mine = request(
            RequestCode::NOTIFY_CONSUMER_IDS_CHANGED,
            &[("consumerGroup", "cg")],
        );
        let answer = dispatch(&lease, "b:10911", &mine).await.unwrap();
        assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(consumer.rebalances.load(Ordering::SeqCst), before + 1);
        lease.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_instance_answers_nothing_but_errors() {
        let lease = instance("processor_released");
        let weak = Arc::downgrade(lease.inner());
        lease.release().await;
        let cmd = request(
            RequestCode::GET_CONSUMER_RUNNING_INFO,
            &[("consumerGroup", "cg")],
        );
        let answer = handle(weak, "b:10911", cmd).await;
        assert_eq!(answer.response_code(), ResponseCode::SYSTEM_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushed_reply_completes_its_request() {
        let lease = instance("processor_reply");
        let waiter = lease.expect_reply("corr-1");
        let mut properties = rocketmq_model::Properties::new();
        properties
            .insert(property::CORRELATION_ID, "corr-1")
            .unwrap();
        let encoded = properties.encode();
        let fields = [
            ("producerGroup", "replier"),
            ("topic", "DefaultCluster_REPLY_TOPIC"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1"),
            ("flag", "0"),
            ("properties", encoded.as_str()),
            ("bornHost", "10.0.0.2:1234"),
            ("storeHost", "10.0.0.1:10911"),
            ("storeTimestamp", "2"),
        ];
        let cmd = request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT, &fields).with_body("pong");
        let answer = dispatch(&lease, "b:10911", &cmd).await.unwrap();
        assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
        let reply = waiter
            .wait(std::time::Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(&reply.message.body[..], b"pong");
        lease.release().await;
    }
}
