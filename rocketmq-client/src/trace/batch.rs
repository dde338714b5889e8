//! Trace records gathered into trace messages, as Java's
//! `AsyncTraceDispatcher` gathers them: by the topic the records are
//! about, each message at most [`MAX_RECORDS`] records and [`MAX_BODY`]
//! bytes of them, its keys the message ids and business keys the records
//! name (so that the dashboard finds a message's trace by its id or key).

use std::collections::BTreeSet;

use rocketmq_model::body::trace::TraceRecord;

/// The most record bytes in one trace message (Java's trace producer's
/// `maxMessageSize`, 128,000). A single larger record goes alone.
pub(crate) const MAX_BODY: usize = 128_000;

/// The most records in one trace message (Java's `batchNum`, 20: Java
/// never sends more contexts together, even when it flushes a full buffer
/// at shutdown). Their keys then stay well within the 32,767 bytes a
/// message's properties may take; a backlog of short records filling
/// [`MAX_BODY`] would name far more ids than that.
pub(crate) const MAX_RECORDS: usize = 20;

/// A record waiting to be sent, with the topic it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Traced {
    pub(crate) topic: String,
    pub(crate) record: TraceRecord,
}

/// The body and keys of one trace message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceMessage {
    pub(crate) body: String,
    pub(crate) keys: BTreeSet<String>,
}

impl TraceMessage {
    fn new() -> Self {
        TraceMessage {
            body: String::new(),
            keys: BTreeSet::new(),
        }
    }
}

/// `records` as trace messages: per topic (in the order topics first
/// appear), records in their order, each message kept within
/// [`MAX_RECORDS`] and [`MAX_BODY`].
pub(crate) fn trace_messages(records: Vec<Traced>) -> Vec<TraceMessage> {
    let mut topics: Vec<(String, Vec<TraceRecord>)> = Vec::new();
    for Traced { topic, record } in records {
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, list)) => list.push(record),
            None => topics.push((topic, vec![record])),
        }
    }
    let mut messages = Vec::new();
    for (_, list) in topics {
        let mut current = TraceMessage::new();
        let mut count = 0;
        let mut text = String::new();
        for record in list {
            text.clear();
            record.encode_into(&mut text);
            let full = count == MAX_RECORDS || current.body.len() + text.len() > MAX_BODY;
            if !current.body.is_empty() && full {
                messages.push(std::mem::replace(&mut current, TraceMessage::new()));
                count = 0;
            }
            current.body.push_str(&text);
            current.keys.extend(record.index_keys().map(str::to_owned));
            count += 1;
        }
        if !current.body.is_empty() {
            messages.push(current);
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use rocketmq_model::body::trace::SubBefore;

    use super::*;

    fn traced(topic: &str, msg_id: &str, keys: Option<&str>) -> Traced {
        Traced {
            topic: topic.into(),
            record: TraceRecord::SubBefore(SubBefore {
                timestamp: 1,
                region_id: "r".into(),
                group: "g".into(),
                request_id: "R".into(),
                msg_id: msg_id.into(),
                retry_times: 0,
                keys: keys.map(Into::into),
            }),
        }
    }

    #[test]
    fn records_of_one_topic_share_a_message_keyed_by_their_ids_and_keys() {
        let messages = trace_messages(vec![
            traced("A", "m1", Some("k1 k2")),
            traced("B", "m2", None),
            traced("A", "m3", None),
        ]);
        assert_eq!(messages.len(), 2);
        let keys: Vec<&str> = messages[0].keys.iter().map(String::as_str).collect();
        assert_eq!(keys, ["k1", "k2", "m1", "m3"]);
        let decoded = TraceRecord::decode_all(&messages[0].body).unwrap();
        let ids: Vec<&str> = decoded.iter().map(TraceRecord::msg_id).collect();
        assert_eq!(ids, ["m1", "m3"]);
        assert_eq!(messages[1].keys.iter().collect::<Vec<_>>(), ["m2"]);
    }

    #[test]
    fn a_full_buffer_flushed_at_once_keeps_each_messages_keys_storable() {
        // What a shutdown flushes when tracing fell behind: the whole
        // buffer, short records with 32-character ids and a business key.
        let records = (0..2048)
            .map(|i| traced("A", &format!("{i:032X}"), Some(&format!("order-{i:012}"))))
            .collect();
        let messages = trace_messages(records);
        let mut count = 0;
        for message in &messages {
            let keys: Vec<&str> = message.keys.iter().map(String::as_str).collect();
            // KEYS, space separated, is one of the message's properties,
            // which a broker stores in at most 32,767 bytes.
            let keys_len = keys.join(" ").len();
            assert!(keys_len < 32_767, "{keys_len} bytes of keys");
            count += TraceRecord::decode_all(&message.body).unwrap().len();
        }
        assert_eq!(count, 2048);
    }

    #[test]
    fn a_body_never_passes_the_limit_but_a_huge_record_goes_alone() {
        let big = "k".repeat(MAX_BODY / 3);
        let records = (0..7)
            .map(|i| traced("A", &format!("m{i}"), Some(&big)))
            .chain([traced("A", "huge", Some(&"h".repeat(MAX_BODY + 1)))])
            .collect();
        let messages = trace_messages(records);
        assert_eq!(
            messages.len(),
            5,
            "2 + 2 + 2 + 1 records, then the huge one"
        );
        for message in &messages[..4] {
            assert!(message.body.len() <= MAX_BODY);
        }
        assert!(messages[4].body.len() > MAX_BODY);
        let count: usize = (messages.iter())
            .map(|m| TraceRecord::decode_all(&m.body).unwrap().len())
            .sum();
        assert_eq!(count, 8);
    }
}
