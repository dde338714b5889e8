//! A producer and a push consumer end to end against the testkit's secure
//! modes: over TLS with a `TlsTransport` trusting the test CA, and against
//! brokers (and a nameserver) that check ACL signatures.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::sync::Arc;
use std::time::Duration;

use consumer_support::{Seen, msg, unique, wait_assigned, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{ClientConfig, ClientError, Producer, PushConsumer, SendStatus};
use rocketmq_kernel::KernelError;
use rocketmq_model::{MessageExt, ResponseCode};
use rocketmq_remoting::{Credentials, RemotingError, Transport};
use rocketmq_testkit::{TestCertificates, TestCluster};

const ACCESS_KEY: &str = "app";
const SECRET_KEY: &str = "app-secret";

fn config(cluster: &TestCluster, transport: Arc<dyn Transport>) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = unique("secure");
    config.client_ip = Some("10.8.8.8".parse().unwrap());
    config.transport = Some(transport);
    config
}

fn signed(cluster: &TestCluster, secret: &str) -> ClientConfig {
    let mut config = config(cluster, cluster.transport());
    config.credentials = Some(Credentials::new(ACCESS_KEY, secret));
    config
}

async fn producer_of(config: ClientConfig) -> Producer {
    Producer::builder()
        .client_config(config)
        .producer_group("pg")
        .retry_times_when_send_failed(0)
        .build()
        .await
        .unwrap()
}

/// A started push consumer of `group` on `T` from the first offset,
/// recording what it consumes into `seen`.
async fn consumer_of(config: ClientConfig, seen: &Seen) -> PushConsumer {
    let seen = seen.clone();
    PushConsumer::builder("cg", config)
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap()
}

/// The response code of a refusal inside `error`.
fn refusal_code(error: &ClientError) -> Option<ResponseCode> {
    let remoting = match error {
        ClientError::Remoting(e) | ClientError::Kernel(KernelError::Remoting(e)) => e,
        _ => return None,
    };
    match remoting {
        RemotingError::Response { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_and_a_push_consumer_work_over_tls() {
    let certs = TestCertificates::generate().unwrap();
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .tls(certs.chain(), certs.key())
        .start_tcp()
        .await
        .unwrap();
    let tls: Arc<dyn Transport> = Arc::new(certs.client_transport().unwrap());
    let seen = Seen::default();
    let consumer = consumer_of(config(&cluster, Arc::clone(&tls)), &seen).await;
    wait_assigned(&consumer, 8).await;
    let producer = producer_of(config(&cluster, tls)).await;
    for i in 0..4 {
        let sent = producer
            .send(msg("T", &format!("tls-{i}"), "a"))
            .await
            .unwrap();
        assert_eq!(sent.status, SendStatus::SendOk);
    }
    wait_until("4 messages consumed", Duration::from_secs(30), || {
        seen.len() >= 4
    })
    .await;
    let mut bodies = seen.bodies();
    bodies.sort();
    assert_eq!(bodies, ["tls-0", "tls-1", "tls-2", "tls-3"]);
    producer.shutdown().await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn signed_clients_work_end_to_end_under_acl() {
    let cluster = TestCluster::builder()
        .topic("T")
        .acl(ACCESS_KEY, SECRET_KEY)
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let consumer = consumer_of(signed(&cluster, SECRET_KEY), &seen).await;
    wait_assigned(&consumer, 4).await;
    let producer = producer_of(signed(&cluster, SECRET_KEY)).await;
    let sent = producer.send(msg("T", "signed", "a")).await.unwrap();
    assert_eq!(sent.status, SendStatus::SendOk);
    wait_until("the message consumed", Duration::from_secs(30), || {
        !seen.is_empty()
    })
    .await;
    assert_eq!(seen.bodies(), ["signed"]);
    // The consumer's heartbeat registered it: the broker took it as signed.
    assert_eq!(cluster.broker(0).groups().consumers.len(), 1);
    producer.shutdown().await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_refused_by_the_nameserver_and_the_broker() {
    for namesrv_acl in [true, false] {
        let cluster = TestCluster::builder()
            .topic("T")
            .acl(ACCESS_KEY, SECRET_KEY)
            .namesrv_acl(namesrv_acl)
            .build()
            .await
            .unwrap();
        let producer = producer_of(signed(&cluster, "not-the-secret")).await;
        let error = producer.send(msg("T", "refused", "a")).await.unwrap_err();
        assert_eq!(
            refusal_code(&error),
            Some(ResponseCode::NO_PERMISSION),
            "namesrv_acl {namesrv_acl}: {error:?}"
        );
        assert!(cluster.broker(0).messages("T", 0).is_empty());
        producer.shutdown().await;
    }
}
