//! Request-reply: a producer sends a request and waits for its answer; a
//! push consumer of the request topic answers each request with
//! `create_reply_message`, sent by a producer of its own, and the broker
//! pushes the reply straight back to the requesting client.
//!
//! Three requests, each answered "re: <request>". The example exits non-zero
//! if a reply is missing or wrong.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example request_reply
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example request_reply
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. The requester, the replier and the consumer share one client
//! instance here (one instance name), so the route the first request creates
//! reaches the consumer at once; in two processes the consumer would find the
//! topic at its next route refresh.

use std::process::ExitCode;
use std::sync::Arc;

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::producer::create_reply_message;
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{BoxError, Cluster, body_text, run_example, unique_name};
use rocketmq_model::{Message, MessageExt};
use rocketmq_testkit::TestCluster;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("request_reply", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect_or_start(TestCluster::builder()).await?;
    let topic = unique_name("RequestTopic");
    let config = cluster.client_config_named(&unique_name("request-reply"));

    // The answering side: a consumer of the requests and a producer for the
    // replies.
    let replier = Arc::new(
        Producer::builder()
            .client_config(config.clone())
            .producer_group("reply-producer")
            .build()
            .await?,
    );
    let answering = Arc::clone(&replier);
    let consumer = PushConsumer::builder("request-consumer", config.clone())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let replier = Arc::clone(&answering);
            async move {
                for request in msgs {
                    let answer = format!("re: {}", body_text(&request));
                    println!("answering {:?} with {answer:?}", body_text(&request));
                    let reply = match create_reply_message(&request.message, answer) {
                        Ok(reply) => reply,
                        Err(err) => {
                            // Not a request (no reply address): nothing to answer.
                            println!("not answered: {err}");
                            continue;
                        }
                    };
                    if let Err(err) = replier.send(reply).await {
                        println!("reply not sent ({err}); the request is consumed again");
                        return ConcurrentResult::RetryLater;
                    }
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;

    // The asking side.
    let requester = Producer::builder()
        .client_config(config)
        .producer_group("request-producer")
        .build()
        .await?;
    let mut outcome = Ok(());
    for question in ["what time is it", "how is the weather", "who is there"] {
        let request = Message::builder(&topic).body(question).build()?;
        match requester.request(request, cluster.patience()).await {
            Ok(reply) => {
                let answer = body_text(&reply).into_owned();
                println!("{question:?} was answered {answer:?}");
                if answer != format!("re: {question}") {
                    outcome = Err(format!("{question:?} got a wrong answer: {answer:?}").into());
                }
            }
            Err(err) => {
                outcome = Err(format!("{question:?} got no answer: {err}").into());
                break;
            }
        }
    }

    consumer.shutdown().await;
    requester.shutdown().await;
    if let Ok(replier) = Arc::try_unwrap(replier) {
        replier.shutdown().await;
    }
    cluster.shutdown().await;
    outcome
}
