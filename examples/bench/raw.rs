//! The floor: pre-encoded SEND_MESSAGE_V2 frames written with N in flight and the
//! answers read back, with no client logic at all (no routing, no pending table,
//! no retries). The client's figures are compared with this one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rocketmq_model::RequestCode;
use rocketmq_model::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rocketmq_remoting::codec::{RemotingCodec, frame};
use rocketmq_remoting::{RemotingCommand, SerializeType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::codec::FramedRead;

use crate::report::{Report, cpu_start, latency_histogram, record};

/// Distinct pre-encoded frames (opaques); reused round-robin, far more than the
/// in-flight count so that an opaque is never in flight twice.
const DISTINCT_FRAMES: usize = 65_536;

/// What to send.
pub(crate) struct RawPlan {
    /// The broker's address.
    pub(crate) broker_addr: String,
    /// The topic (must exist or be auto-creatable).
    pub(crate) topic: String,
    /// Messages to send.
    pub(crate) messages: u64,
    /// The body of every message.
    pub(crate) body: Bytes,
    /// Requests in flight.
    pub(crate) concurrency: usize,
    /// Header serialization.
    pub(crate) serialize_type: SerializeType,
    /// Write every frame whose permit is free in one `write`, as the client's
    /// writer coalesces the frames of concurrent callers, instead of one
    /// `write` per frame.
    pub(crate) coalesce: bool,
}

/// Runs the raw mode and reports.
pub(crate) async fn run(plan: RawPlan) -> Result<Report, Box<dyn std::error::Error>> {
    let frames = encode_frames(&plan)?;
    let stream = TcpStream::connect(&plan.broker_addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let permits = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let origin = Instant::now();
    let sent_at: Arc<[AtomicU64]> = (0..frames.len()).map(|_| AtomicU64::new(0)).collect();

    let cpu = cpu_start();
    let started = Instant::now();
    let reader = tokio::spawn(read_answers(
        FramedRead::new(read, RemotingCodec::default()),
        plan.messages,
        Arc::clone(&permits),
        Arc::clone(&sent_at),
        origin,
    ));
    // Both halves run as tasks, as the client's writer and reader do, so that
    // with one worker thread everything runs on it.
    let writer = tokio::spawn(write_frames(
        write,
        frames,
        plan.messages,
        permits,
        sent_at,
        origin,
        plan.coalesce,
    ));
    // Dropping the write half would shut the socket's sending side, and the
    // broker would hang up before answering the last frames: keep it open.
    let _write = writer
        .await?
        .map_err(|error| -> Box<dyn std::error::Error> { error })?;
    let (ok, failed, latency) = reader.await??;
    Ok(Report {
        label: format!(
            "raw send ({}{})",
            plan.serialize_type.name(),
            if plan.coalesce { ", coalesced" } else { "" }
        ),
        messages: ok,
        failures: failed,
        size: plan.body.len(),
        concurrency: plan.concurrency,
        elapsed: started.elapsed(),
        latency,
        cpu: cpu.elapsed(),
    })
}

/// Writes `messages` frames, each once a permit is free (an answer came back);
/// returns the write half, still open.
async fn write_frames(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    frames: Vec<Bytes>,
    messages: u64,
    permits: Arc<Semaphore>,
    sent_at: Arc<[AtomicU64]>,
    origin: Instant,
    coalesce: bool,
) -> Result<tokio::net::tcp::OwnedWriteHalf, Box<dyn std::error::Error + Send + Sync>> {
    let mut batch = BytesMut::new();
    let mut next = 0u64;
    while next < messages {
        permits.acquire().await?.forget();
        let mut ready = 1;
        while coalesce && next + ready < messages {
            match permits.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
            ready += 1;
        }
        let now = u64::try_from(origin.elapsed().as_nanos())?;
        for i in next..next + ready {
            let index = usize::try_from(i)? % frames.len();
            sent_at[index].store(now, Ordering::Relaxed);
            batch.extend_from_slice(&frames[index]);
        }
        next += ready;
        write.write_all(&batch).await?;
        batch.clear();
    }
    Ok(write)
}

type Answers = (u64, u64, hdrhistogram::Histogram<u64>);

async fn read_answers(
    mut answers: FramedRead<tokio::net::tcp::OwnedReadHalf, RemotingCodec>,
    expected: u64,
    permits: Arc<Semaphore>,
    sent_at: Arc<[AtomicU64]>,
    origin: Instant,
) -> Result<Answers, rocketmq_remoting::RemotingError> {
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut latency = latency_histogram();
    while ok + failed < expected {
        let Some(answer) = answers.next().await.transpose()? else {
            return Err(rocketmq_remoting::RemotingError::NoAddress(
                "the broker closed the connection".into(),
            ));
        };
        let index = usize::try_from(answer.opaque).unwrap_or(0) % sent_at.len();
        let sent = Duration::from_nanos(sent_at[index].load(Ordering::Relaxed));
        record(&mut latency, origin.elapsed().saturating_sub(sent));
        if answer.response_code().is_stored() {
            ok += 1;
        } else {
            failed += 1;
        }
        permits.add_permits(1);
    }
    Ok((ok, failed, latency))
}

fn encode_frames(plan: &RawPlan) -> Result<Vec<Bytes>, Box<dyn std::error::Error>> {
    let body = plan.body.clone();
    let born = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let count = usize::try_from(plan.messages)?.clamp(1, DISTINCT_FRAMES);
    let mut frames = Vec::with_capacity(count);
    for opaque in 0..count {
        let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
            producer_group: "bench_raw_producer".into(),
            topic: plan.topic.as_str().into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: i32::try_from(opaque % 4)?,
            born_timestamp: born,
            properties: Some(format!(
                "WAIT\u{1}true\u{2}UNIQ_KEY\u{1}RAW{opaque:028X}\u{2}"
            )),
            ..Default::default()
        });
        let mut cmd = RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header)
            .with_body(body.clone())
            .with_serialize_type(plan.serialize_type);
        cmd.opaque = i32::try_from(opaque)?;
        let mut buf = BytesMut::new();
        frame::encode(&cmd, &mut buf)?;
        frames.push(buf.freeze());
    }
    Ok(frames)
}
