//! Route lookups through the real API over a counting fake nameserver: one
//! nameserver request per topic however many lookups miss at once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_kernel::api::{RemotingBrokerApi, ServiceConnector};
use rocketmq_kernel::{KernelError, Routes};
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::{RemotingCommand, RemotingError};

const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"a:10911",1:"a1:10911"},"brokerName":"broker-a","cluster":"c"}],"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"writeQueueNums":4}]}"#;

/// Route requests per topic.
type Asked = Arc<Mutex<HashMap<String, usize>>>;

/// A nameserver answering after 100 ms: topic "T" has a route, others do not.
fn nameserver(asked: Asked) -> Routes {
    let svc = tower::service_fn(move |req: RemotingCommand| {
        let asked = Arc::clone(&asked);
        async move {
            assert_eq!(req.request_code(), RequestCode::GET_ROUTEINFO_BY_TOPIC);
            let topic = req.ext_fields["topic"].to_string();
            *asked.lock().unwrap().entry(topic.clone()).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let response = if topic == "T" {
                RemotingCommand::response(ResponseCode::SUCCESS, req.opaque).with_body(ROUTE)
            } else {
                RemotingCommand::response(ResponseCode::TOPIC_NOT_EXIST, req.opaque)
            };
            Ok::<_, RemotingError>(response)
        }
    });
    let api = RemotingBrokerApi::with_connector(ServiceConnector::new(svc));
    Routes::new(Arc::new(api))
}

fn asked(asked: &Asked, topic: &str) -> usize {
    asked.lock().unwrap().get(topic).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_request() {
    let counts = Asked::default();
    let routes = nameserver(Arc::clone(&counts));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let routes = routes.clone();
            tokio::spawn(async move { routes.route("T").await })
        })
        .collect();
    let mut found = Vec::new();
    for task in tasks {
        found.push(task.await.unwrap().unwrap());
    }
    assert_eq!(asked(&counts, "T"), 1);
    assert!(found.windows(2).all(|pair| Arc::ptr_eq(&pair[0], &pair[1])));
    assert_eq!(&*routes.table().master_addr("broker-a").unwrap(), "a:10911");
    assert_eq!(routes.table().subscribe_queues("T").unwrap().len(), 4);

    // A later refresh is a new request; concurrent ones share it again.
    let (a, b) = tokio::join!(routes.refresh("T"), routes.refresh("T"));
    assert!(!a.unwrap() && !b.unwrap(), "the route did not change");
    assert_eq!(asked(&counts, "T"), 2);
}

#[tokio::test(start_paused = true)]
async fn each_topic_has_its_own_flight_and_misses_share_the_no_route_answer() {
    let counts = Asked::default();
    let routes = nameserver(Arc::clone(&counts));
    let (t, u1, u2) = tokio::join!(routes.route("T"), routes.route("U"), routes.route("U"));
    assert!(t.is_ok());
    for result in [u1, u2] {
        assert!(matches!(result, Err(KernelError::NoRoute { topic }) if topic == "U"));
    }
    assert_eq!(asked(&counts, "T"), 1);
    assert_eq!(asked(&counts, "U"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_lookup_does_not_strand_the_others() {
    let counts = Asked::default();
    let routes = nameserver(Arc::clone(&counts));
    // The first caller gives up half-way; the second still gets the answer
    // of the same request.
    let impatient = tokio::time::timeout(Duration::from_millis(50), routes.route("T"));
    let (gave_up, patient) = tokio::join!(impatient, routes.route("T"));
    assert!(gave_up.is_err());
    assert!(patient.is_ok());
    assert_eq!(asked(&counts, "T"), 1);
}

/// A lookup that misses while another stores the template route for the
/// same topic uses that route: the first sends to a new topic, many at once
/// (a burst of async sends), must not fail with NoRoute because one of
/// them was quicker.
#[tokio::test(start_paused = true)]
async fn a_miss_uses_the_template_route_another_lookup_stored_meanwhile() {
    let svc = tower::service_fn(move |req: RemotingCommand| async move {
        let topic = req.ext_fields["topic"].to_string();
        let response = if topic == "TBW102" {
            tokio::time::sleep(Duration::from_millis(50)).await;
            RemotingCommand::response(ResponseCode::SUCCESS, req.opaque).with_body(ROUTE)
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            RemotingCommand::response(ResponseCode::TOPIC_NOT_EXIST, req.opaque)
        };
        Ok::<_, RemotingError>(response)
    });
    let api = RemotingBrokerApi::with_connector(ServiceConnector::new(svc));
    let routes = Routes::new(Arc::new(api));
    // The first lookup misses at 100 ms and stores the template at 150 ms;
    // the second starts its own lookup at 120 ms, which misses at 220 ms.
    let first = routes.publish_info_or_template("New", 4);
    let second = async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        routes.publish_info_or_template("New", 4).await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first.is_ok(), "{first:?}");
    let second = second.expect("the stored template route");
    assert_eq!(second.queues().len(), 4);
}
