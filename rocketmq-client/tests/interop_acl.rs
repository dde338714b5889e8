//! Interop against a real broker that enforces authentication: requests
//! signed with the right credentials pass, unsigned or wrongly signed ones
//! are refused.
//!
//! Needs a cluster with authentication on, which `BROKERS=1 ACL=1
//! scripts/real-cluster.sh start` adds beside the plain one (nameserver on
//! port 9877, user `interop` / `interop-secret`) and names in
//! `ROCKETMQ_ACL_NAMESRV_ADDR`; skipped, saying so, without it.

#![allow(clippy::unwrap_used)]

mod interop_support;

use interop_support::{Seen, config, msg, recording, secs, skip, unique, wait_until};
use rocketmq_client::{ClientConfig, ClientError, Producer, SendStatus};
use rocketmq_kernel::KernelError;
use rocketmq_model::ResponseCode;
use rocketmq_model::header::CreateTopicRequestHeader;
use rocketmq_remoting::{Credentials, RemotingError, SerializeType};

/// The user `scripts/real-cluster.sh` creates on its ACL broker.
const ACCESS_KEY: &str = "interop";
const SECRET_KEY: &str = "interop-secret";

fn acl_namesrv(test: &str) -> Option<String> {
    match std::env::var("ROCKETMQ_ACL_NAMESRV_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => {
            interop_support::init_logs();
            Some(addr.trim().to_owned())
        }
        _ => {
            skip(
                test,
                "ROCKETMQ_ACL_NAMESRV_ADDR is not set (run ACL=1 scripts/real-cluster.sh start)",
            );
            None
        }
    }
}

/// The broker's response code inside `error`, if it is a refusal.
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

fn signed(ns: &str, secret: &str) -> ClientConfig {
    let mut config = config(ns);
    config.credentials = Some(Credentials::new(ACCESS_KEY, secret));
    config
}

async fn producer_of(config: ClientConfig) -> Producer {
    Producer::builder()
        .client_config(config)
        .producer_group(unique("pg"))
        .send_msg_timeout(secs(5))
        .retry_times_when_send_failed(0)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_pass_and_unsigned_ones_are_refused() {
    let Some(ns) = acl_namesrv("signed_requests_pass_and_unsigned_ones_are_refused") else {
        return;
    };
    let producer = producer_of(signed(&ns, SECRET_KEY)).await;
    let topic = unique("it_acl");
    let created = producer
        .admin()
        .create_topic_in_cluster(
            interop_support::CLUSTER,
            CreateTopicRequestHeader::new(topic.as_str(), 2),
        )
        .await
        .unwrap();
    assert!(!created.is_empty());
    interop_support::wait_route(&producer, &topic).await;

    // Signed: sent, and consumed by a signed consumer.
    let result = producer.send(msg(&topic, "signed", "x")).await.unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    let seen = Seen::default();
    let consumer = recording(signed(&ns, SECRET_KEY), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("the signed message consumed", secs(30), || seen.len() >= 1).await;
    assert_eq!(seen.bodies(), ["signed"]);

    // Signing covers the binary header serialization too.
    let mut binary = signed(&ns, SECRET_KEY);
    binary.serialize_type = SerializeType::RocketMq;
    let binary = producer_of(binary).await;
    let result = binary
        .send(msg(&topic, "signed-binary", "x"))
        .await
        .unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    wait_until("the binary-signed message consumed", secs(30), || {
        seen.len() >= 2
    })
    .await;
    binary.shutdown().await;

    // Unsigned and wrongly signed sends are refused by the broker.
    for config in [config(&ns), signed(&ns, "not-the-secret")] {
        let stranger = producer_of(config).await;
        let refused = stranger.send(msg(&topic, "stranger", "x")).await;
        let error = refused.expect_err("the broker accepted an unsigned send");
        assert_eq!(
            refusal_code(&error),
            Some(ResponseCode::NO_PERMISSION),
            "{error:?}"
        );
        stranger.shutdown().await;
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}
