//! The batch codec (PROTOCOL.md §5.5): the SEND_BATCH_MESSAGE body, which is
//! also the body of a broker-side inner batch.
//!
//! One entry per message: TOTALSIZE (= 22 + bodyLen + propLen), MAGICCODE 0,
//! BODYCRC 0, FLAG, BODYLEN + body, PROPLEN (int16) + properties string.

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{ByteReader, checked_len};
use super::{Message, Properties};
use crate::error::{ModelError, Result};

const WHAT: &str = "batch entry";
/// The fixed part of an entry: TOTALSIZE, MAGICCODE, BODYCRC, FLAG, BODYLEN, PROPLEN.
const FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4 + 2;

/// Checks Java's batch rules (`MessageBatch.generateFromList`): at least one
/// message; all with the first one's topic and WAIT value; none with a delay
/// level; no `%RETRY%` topic. A violation is [`ModelError::InvalidBatch`]
/// naming the first offending message.
pub fn validate_batch(messages: &[Message]) -> Result<()> {
    let Some(first) = messages.first() else {
        return Err(invalid(0, "a batch needs at least one message"));
    };
    for (index, message) in messages.iter().enumerate() {
        if message.delay_level().is_some() {
            return Err(invalid(index, "delay levels are not supported in a batch"));
        }
        if crate::resource::is_retry_topic(&message.topic) {
            return Err(invalid(index, "retry topics are not supported in a batch"));
        }
        if message.topic != first.topic {
            return Err(invalid(
                index,
                "all messages of a batch must have the same topic",
            ));
        }
        if message.wait_store_ok() != first.wait_store_ok() {
            return Err(invalid(
                index,
                "all messages of a batch must have the same WAIT value",
            ));
        }
    }
    Ok(())
}

/// The bytes `message` takes in an encoded batch: its body and properties
/// and 22 bytes of lengths and flags.
pub fn batch_entry_len(message: &Message) -> usize {
    FIXED_LEN + message.body.len() + message.properties.encoded_len()
}

/// Validates the batch ([`validate_batch`]) and encodes its body.
///
/// Bodies are written as given (Java never compresses batches), and nothing is
/// added to the properties: give each message its UNIQ_KEY before encoding.
/// A properties string over 32767 bytes is [`ModelError::TooLarge`].
pub fn encode_batch(messages: &[Message]) -> Result<Bytes> {
    validate_batch(messages)?;
    let mut sizes = Vec::with_capacity(messages.len());
    let mut capacity = 0usize;
    for message in messages {
        let properties_len = checked_len(
            message.properties.encoded_len(),
            Properties::MAX_ENCODED_LEN,
            "properties",
        )?;
        let total = checked_len(
            FIXED_LEN + message.body.len() + properties_len,
            i32::MAX as usize,
            "batch entry",
        )?;
        sizes.push((total, properties_len));
        capacity = capacity.saturating_add(total);
    }
    let mut out = BytesMut::with_capacity(capacity);
    for (message, (total, properties_len)) in messages.iter().zip(sizes) {
        // Both lengths were checked against i32/i16 limits above.
        out.put_i32(total as i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(message.flag);
        out.put_i32(message.body.len() as i32);
        out.put_slice(&message.body);
        out.put_i16(properties_len as i16);
        message.properties.encode_into(&mut out);
    }
    Ok(out.freeze())
}

/// Decodes a batch body into messages of `topic` (entries carry no topic).
/// Bodies are slices of `body` (no copy). MAGICCODE and BODYCRC are not
/// checked (Java ignores them); TOTALSIZE must match the entry's fields.
pub fn decode_batch(body: Bytes, topic: &str) -> Result<Vec<Message>> {
    Ok(decode_batch_entries(body)?
        .into_iter()
        .map(|entry| Message {
            topic: topic.to_owned(),
            body: entry.body,
            flag: entry.flag,
            properties: entry.properties,
        })
        .collect())
}

/// One decoded batch entry.
pub(super) struct BatchEntry {
    pub(super) total_size: i32,
    pub(super) body_crc: i32,
    pub(super) flag: i32,
    pub(super) body: Bytes,
    pub(super) properties: Properties,
}

pub(super) fn decode_batch_entries(body: Bytes) -> Result<Vec<BatchEntry>> {
    let mut r = ByteReader::new(body, WHAT);
    let mut entries = Vec::new();
    while !r.buf.is_empty() {
        let total_size = r.i32()?;
        let total = usize::try_from(total_size)
            .ok()
            .filter(|&t| t >= FIXED_LEN)
            .ok_or_else(|| {
                ModelError::malformed(WHAT, format!("TOTALSIZE {total_size} is invalid"))
            })?;
        let mut e = ByteReader::new(r.bytes(total - 4)?, WHAT);
        let _magic = e.i32()?;
        let body_crc = e.i32()?;
        let flag = e.i32()?;
        let body_len = e.len32("BODYLEN")?;
        let body = e.bytes(body_len)?;
        let properties_len = e.len16("PROPLEN")?;
        let properties = Properties::parse_bytes(&e.bytes(properties_len)?);
        if !e.buf.is_empty() {
            return Err(ModelError::malformed(
                WHAT,
                format!(
                    "TOTALSIZE {total_size} exceeds the fields by {} bytes",
                    e.buf.len()
                ),
            ));
        }
        entries.push(BatchEntry {
            total_size,
            body_crc,
            flag,
            body,
            properties,
        });
    }
    Ok(entries)
}

fn invalid(index: usize, reason: &'static str) -> ModelError {
    ModelError::InvalidBatch { index, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::property;
    use proptest::prelude::*;

    fn msg(topic: &str, body: &'static str) -> Message {
        Message::builder(topic).body(body).build().unwrap()
    }

    #[test]
    fn entry_layout() {
        let mut m = msg("t", "abc");
        m.flag = 9;
        m.properties.insert("k", "v").unwrap();
        assert_eq!(batch_entry_len(&m), 29);
        let bytes = encode_batch(&[m]).unwrap();
        let expected: Vec<u8> = [
            &[0, 0, 0, 29][..], // TOTALSIZE = 22 + 3 + 4
            &[0, 0, 0, 0],      // MAGICCODE
            &[0, 0, 0, 0],      // BODYCRC
            &[0, 0, 0, 9],      // FLAG
            &[0, 0, 0, 3],      // BODYLEN
            b"abc",
            &[0, 4], // PROPLEN
            b"k\x01v\x02",
        ]
        .concat();
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn round_trip_shares_memory() {
        let mut a = msg("t", "first");
        a.properties.insert(property::UNIQ_KEY, "A").unwrap();
        let b = msg("t", "");
        let encoded = encode_batch(&[a.clone(), b.clone()]).unwrap();
        let decoded = decode_batch(encoded.clone(), "t").unwrap();
        assert_eq!(decoded, [a, b]);
        let range = encoded.as_ptr_range();
        assert!(range.contains(&decoded[0].body.as_ptr()));
    }

    #[test]
    fn java_batch_rules() {
        let t = msg("t", "x");
        let mut delay_300 = msg("t", "x");
        delay_300.properties.insert(property::DELAY, "300").unwrap();
        let cases: Vec<(Vec<Message>, usize)> = vec![
            (vec![], 0),
            (vec![t.clone(), msg("u", "x")], 1),
            (
                vec![
                    t.clone(),
                    Message::builder("t").wait_store_ok(false).build().unwrap(),
                ],
                1,
            ),
            (
                vec![
                    t.clone(),
                    t.clone(),
                    Message::builder("t").delay_level(2).build().unwrap(),
                ],
                2,
            ),
            (vec![Message::new("%RETRY%g", "x")], 0),
            // Above the longest level, as another client may write it.
            (vec![t.clone(), delay_300], 1),
        ];
        for (batch, at) in cases {
            match encode_batch(&batch) {
                Err(ModelError::InvalidBatch { index, .. }) => assert_eq!(index, at),
                other => panic!("expected InvalidBatch at {at}, got {other:?}"),
            }
        }
        // WAIT absent and WAIT=true are the same value.
        let explicit = Message::builder("t").wait_store_ok(true).build().unwrap();
        assert!(validate_batch(&[t, explicit]).is_ok());
    }

    #[test]
    fn malformed_batches_are_errors() {
        let good = encode_batch(&[msg("t", "body")]).unwrap();
        // Cut anywhere: truncated.
        for cut in 1..good.len() {
            assert!(
                decode_batch(good.slice(..cut), "t").is_err(),
                "cut at {cut}"
            );
        }
        // TOTALSIZE one too large for its fields.
        let mut longer = BytesMut::from(&good[..]);
        longer[3] += 1;
        longer.put_u8(0);
        assert!(matches!(
            decode_batch(longer.freeze(), "t"),
            Err(ModelError::Malformed { .. })
        ));
        // TOTALSIZE below the fixed part.
        assert!(decode_batch(Bytes::from_static(&[0, 0, 0, 4]), "t").is_err());
    }

    proptest! {
        #[test]
        fn encode_decode(entries in proptest::collection::vec(
            (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..64),
             proptest::collection::btree_map("[a-zA-Z_]{1,8}", "[^\u{1}\u{2}]{1,8}", 0..4)),
            1..6)) {
            let messages: Vec<Message> = entries.into_iter().map(|(flag, body, props)| {
                let mut m = Message::new("topic", body);
                m.flag = flag;
                for (k, v) in props {
                    if k != property::DELAY && k != property::WAIT {
                        m.properties.insert(k, v).unwrap();
                    }
                }
                m
            }).collect();
            let encoded = encode_batch(&messages).unwrap();
            prop_assert_eq!(decode_batch(encoded, "topic").unwrap(), messages);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_batch(Bytes::from(bytes), "t");
        }
    }
}
