//! A one-process stand-in for a nameserver and a broker, built on
//! `rocketmq-remoting`'s own server, so the quickstart runs with no cluster.
//!
//! It answers just what the quickstart sends: routes (105), sends (10, 310) and
//! pulls (11, 361), storing messages in memory and serving real records. The full
//! fake cluster with honest broker semantics is `rocketmq-testkit`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rocketmq_model::header::{
    PullMessageRequestHeader, PullMessageResponseHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rocketmq_model::message::{Message, MessageExt, Properties, encode_record};
use rocketmq_model::route::{BrokerData, QueueData, TopicRouteData, perm};
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::RemotingCommand;
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::connection::{Connection, ConnectionConfig, InboundService};
use rocketmq_remoting::server::Server;
use rocketmq_remoting::transport::{Listener, TcpListener};
use tower::util::BoxCloneSyncService;

/// The broker name the loopback route advertises.
pub const BROKER_NAME: &str = "loopback-broker";
const QUEUES: i32 = 4;

/// Messages by (topic, queue id), in queue-offset order.
#[derive(Default)]
struct Store {
    queues: HashMap<(String, i32), Vec<MessageExt>>,
    commit_log_offset: i64,
}

/// A running loopback server: it is both the nameserver and the broker.
pub struct LoopbackCluster {
    server: Server,
}

impl LoopbackCluster {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr();
        let store = Arc::new(Mutex::new(Store::default()));
        let server = Server::spawn(listener, ConnectionConfig::default(), move |conn| {
            handler(conn, &addr, &store)
        });
        Ok(LoopbackCluster { server })
    }

    /// The address to use as the nameserver (and the broker's address).
    pub fn addr(&self) -> &str {
        self.server.local_addr()
    }

    /// Closes every connection and stops accepting.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn handler(conn: &Connection, addr: &str, store: &Arc<Mutex<Store>>) -> InboundService {
    let addr = addr.to_owned();
    let peer = conn.peer_addr().to_owned();
    let store = Arc::clone(store);
    let service = tower::service_fn(move |request: RemotingCommand| {
        let answer = answer(&request, &addr, &peer, &store);
        async move { Ok::<_, RemotingError>(answer) }
    });
    BoxCloneSyncService::new(service)
}

fn answer(
    request: &RemotingCommand,
    addr: &str,
    peer: &str,
    store: &Mutex<Store>,
) -> RemotingCommand {
    let result = match request.request_code() {
        RequestCode::GET_ROUTEINFO_BY_TOPIC => Ok(route(addr)),
        RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2 => {
            send(request, addr, peer, store)
        }
        RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE => pull(request, store),
        other => Ok(
            RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, 0)
                .with_remark(format!(" request type {} not supported", other.0)),
        ),
    };
    result.unwrap_or_else(|err| {
        RemotingCommand::response(ResponseCode::SYSTEM_ERROR, 0).with_remark(err.to_string())
    })
}

fn route(addr: &str) -> RemotingCommand {
    let route = TopicRouteData {
        queue_datas: vec![QueueData {
            broker_name: BROKER_NAME.into(),
            read_queue_nums: QUEUES,
            write_queue_nums: QUEUES,
            perm: perm::READ | perm::WRITE,
            topic_sys_flag: 0,
        }],
        broker_datas: vec![BrokerData {
            cluster: "LoopbackCluster".into(),
            broker_name: BROKER_NAME.into(),
            broker_addrs: [(0, addr.to_owned())].into_iter().collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = route.encode().unwrap_or_default();
    RemotingCommand::response(ResponseCode::SUCCESS, 0).with_body(body)
}

fn send(
    request: &RemotingCommand,
    addr: &str,
    peer: &str,
    store: &Mutex<Store>,
) -> rocketmq_model::Result<RemotingCommand> {
    let header: SendMessageRequestHeader = if request.request_code() == RequestCode::SEND_MESSAGE {
        request.decode_header()?
    } else {
        request.decode_header::<SendMessageRequestHeaderV2>()?.0
    };
    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let commit_log_offset = store.commit_log_offset;
    // A stand-in commit log: each record takes its body plus a fixed overhead.
    store.commit_log_offset += i64::try_from(request.body.len()).unwrap_or(0) + 200;
    let queue = store
        .queues
        .entry((header.topic.clone(), header.queue_id))
        .or_default();
    let message = MessageExt {
        message: Message {
            topic: header.topic,
            body: request.body.clone(),
            flag: header.flag,
            properties: Properties::parse(header.properties.as_deref().unwrap_or_default()),
        },
        queue_id: header.queue_id,
        queue_offset: i64::try_from(queue.len()).unwrap_or(i64::MAX),
        commit_log_offset,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: socket_addr(peer),
        store_timestamp: now_millis(),
        store_host: socket_addr(addr),
        ..Default::default()
    };
    let response = SendMessageResponseHeader {
        msg_id: message.offset_msg_id(),
        queue_id: message.queue_id,
        queue_offset: message.queue_offset,
        ..Default::default()
    };
    queue.push(message);
    Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_header(&response))
}

fn pull(
    request: &RemotingCommand,
    store: &Mutex<Store>,
) -> rocketmq_model::Result<RemotingCommand> {
    let header: PullMessageRequestHeader = request.decode_header()?;
    let store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let empty = Vec::new();
    let queue = store
        .queues
        .get(&(header.topic.clone(), header.queue_id))
        .unwrap_or(&empty);
    let max_offset = i64::try_from(queue.len()).unwrap_or(i64::MAX);
    let start = usize::try_from(header.queue_offset.clamp(0, max_offset)).unwrap_or(0);
    let count = usize::try_from(header.max_msg_nums.max(1)).unwrap_or(1);
    let mut body = BytesMut::new();
    for message in queue.iter().skip(start).take(count) {
        encode_record(message, &mut body)?;
    }
    let taken = queue.len().saturating_sub(start).min(count);
    let response = PullMessageResponseHeader {
        next_begin_offset: i64::try_from(start + taken).unwrap_or(max_offset),
        min_offset: 0,
        max_offset,
        ..Default::default()
    };
    let code = if taken == 0 {
        ResponseCode::PULL_NOT_FOUND
    } else {
        ResponseCode::SUCCESS
    };
    Ok(RemotingCommand::response(code, 0)
        .with_header(&response)
        .with_body(body.freeze()))
}

fn socket_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
