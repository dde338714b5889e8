//! The ROCKETMQ binary header (PROTOCOL.md §2.3).
//!
//! A fixed 21-byte part (code, language, version, opaque, flag, remark length),
//! the remark, then the extFields section: an int32 byte length followed by
//! `keyLen:int16, key, valLen:int32, value` entries. Every integer is big-endian.
//!
//! Reading checks every length against what remains of the header before
//! touching it, so a hostile header is a [`RemotingError::MalformedFrame`],
//! never a panic or an allocation larger than the input.

use bytes::{BufMut, BytesMut};
use rocketmq_model::ExtFields;
use rocketmq_model::header::FieldSink;

use crate::command::{LanguageCode, RemotingCommand, SerializeType};
use crate::error::{RemotingError, Result};

/// Writes `cmd`'s header in the ROCKETMQ layout at the end of `dst`.
///
/// The code and version must fit in an int16 (Java would silently truncate
/// them; codes such as the 5.x POP codes need JSON), a key in 32767 bytes.
/// Empty keys and values are skipped: Java reads them back as absent anyway.
pub(crate) fn write_header(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<()> {
    dst.put_i16(narrow_i16(cmd.code, "code")?);
    dst.put_u8(cmd.language.0);
    dst.put_i16(narrow_i16(cmd.version, "version")?);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    write_remark(cmd.remark.as_deref(), dst)?;
    write_ext_fields(&cmd.ext_fields, dst)
}

fn narrow_i16(value: i32, field: &str) -> Result<i16> {
    i16::try_from(value).map_err(|_| {
        malformed(format!(
            "{field} {value} does not fit the ROCKETMQ header's int16; use the JSON serialization"
        ))
    })
}

fn write_remark(remark: Option<&str>, dst: &mut BytesMut) -> Result<()> {
    let remark = remark.unwrap_or_default();
    dst.put_i32(length_i32(remark.len(), "remark")?);
    dst.put_slice(remark.as_bytes());
    Ok(())
}

fn write_ext_fields(fields: &ExtFields, dst: &mut BytesMut) -> Result<()> {
    let length_at = dst.len();
    dst.put_i32(0);
    let mut sink = BinaryFields { dst, error: None };
    fields.write_to(&mut sink);
    if let Some(error) = sink.error {
        return Err(error);
    }
    let section_len = length_i32(dst.len() - length_at - 4, "extFields section")?;
    dst[length_at..length_at + 4].copy_from_slice(&section_len.to_be_bytes());
    Ok(())
}

/// Writes extFields entries, `keyLen:int16, key, valLen:int32, value`,
/// keeping the first error (the caller discards the frame).
struct BinaryFields<'a> {
    dst: &'a mut BytesMut,
    error: Option<RemotingError>,
}

impl BinaryFields<'_> {
    fn put_field(&mut self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() || value.is_empty() {
            return Ok(());
        }
        let key_len = i16::try_from(key.len()).map_err(|_| {
            malformed(format!(
                "extFields key of {} bytes exceeds 32767",
                key.len()
            ))
        })?;
        let value_len = length_i32(value.len(), "extFields value")?;
        self.dst.put_i16(key_len);
        self.dst.put_slice(key.as_bytes());
        self.dst.put_i32(value_len);
        self.dst.put_slice(value.as_bytes());
        Ok(())
    }
}

impl FieldSink for BinaryFields<'_> {
    fn put_str(&mut self, key: &str, value: &str) {
        if self.error.is_none() {
            self.error = self.put_field(key, value).err();
        }
    }

    fn put_int(&mut self, key: &str, value: i64) {
        self.put_str(key, itoa::Buffer::new().format(value));
    }
}

fn length_i32(len: usize, what: &str) -> Result<i32> {
    i32::try_from(len).map_err(|_| malformed(format!("{what} of {len} bytes is too long")))
}

/// Reads a ROCKETMQ header. The body and serialize type are left for the caller.
pub(crate) fn read_header(header: &[u8]) -> Result<RemotingCommand> {
    let mut r = Reader { rest: header };
    let code = r.i16("code")?;
    let language = r.u8("language")?;
    let version = r.i16("version")?;
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark = read_remark(&mut r)?;
    let ext_fields = read_ext_fields(&mut r)?;
    // Like Java, bytes after the extFields section are ignored.
    Ok(RemotingCommand {
        code: i32::from(code),
        language: LanguageCode(language),
        version: i32::from(version),
        opaque,
        flag,
        remark,
        ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

fn read_remark(r: &mut Reader<'_>) -> Result<Option<String>> {
    let len = r.length_i32("remark length")?;
    let bytes = r.take(len, "remark")?;
    Ok((!bytes.is_empty()).then(|| text(bytes)))
}

/// Room made up front for a header's fields: enough for any header the
/// protocol defines, so reading one never grows the table.
const EXPECTED_FIELDS: usize = 16;

fn read_ext_fields(r: &mut Reader<'_>) -> Result<ExtFields> {
    let len = r.length_i32("extFields length")?;
    let mut section = Reader {
        rest: r.take(len, "extFields section")?,
    };
    let mut fields = ExtFields::with_capacity(EXPECTED_FIELDS);
    while !section.rest.is_empty() {
        let key_len = usize::try_from(section.i16("extFields key length")?)
            .map_err(|_| malformed("negative extFields key length".to_owned()))?;
        let key = section.take(key_len, "extFields key")?;
        let value_len = section.length_i32("extFields value length")?;
        let value = section.take(value_len, "extFields value")?;
        // Java reads an empty key or value as null, i.e. absent.
        if !key.is_empty() && !value.is_empty() {
            fields.insert(String::from_utf8_lossy(key), String::from_utf8_lossy(value));
        }
    }
    Ok(fields)
}

/// Java decodes header strings with `new String(bytes, UTF_8)`, which replaces
/// invalid sequences; so do we.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bounds-checked big-endian cursor over the header bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.rest.len() {
            return Err(malformed(format!(
                "ROCKETMQ header: {what} needs {n} bytes but {} remain",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn i16(&mut self, what: &str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// An int32 length, which must not be negative.
    fn length_i32(&mut self, what: &str) -> Result<usize> {
        let len = self.i32(what)?;
        usize::try_from(len)
            .map_err(|_| malformed(format!("ROCKETMQ header: negative {what} {len}")))
    }
}

fn malformed(reason: String) -> RemotingError {
    RemotingError::MalformedFrame(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(rocketmq_model::RequestCode::GET_ROUTEINFO_BY_TOPIC)
            .with_serialize_type(SerializeType::RocketMq);
        cmd.opaque = 1;
        cmd.ext_fields.insert("topic", "T");
        cmd
    }

    #[test]
    fn header_of_protocol_example() {
        let mut dst = BytesMut::new();
        write_header(&sample(), &mut dst).unwrap();
        let expected: &[u8] = &[
            0x00, 0x69, 0x0c, 0x01, 0xdf, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0x00,
            0x05, b't', b'o', b'p', b'i', b'c', 0, 0, 0, 1, b'T',
        ];
        assert_eq!(&dst[..], expected);
        assert_eq!(read_header(expected).unwrap(), sample());
    }

    #[test]
    fn empty_keys_and_values_read_as_absent_and_duplicates_keep_the_last() {
        let mut h = vec![0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let entries: &[u8] = &[
            0, 1, b'a', 0, 0, 0, 0, // a = "" -> absent
            0, 0, 0, 0, 0, 1, b'x', // "" = x -> absent
            0, 1, b'b', 0, 0, 0, 1, b'1', // b = 1
            0, 1, b'b', 0, 0, 0, 1, b'2', // b = 2, last wins
        ];
        h.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        h.extend_from_slice(entries);
        let cmd = read_header(&h).unwrap();
        assert_eq!(cmd.ext_fields.len(), 1);
        assert_eq!(cmd.ext_fields["b"], "2");
    }

    #[test]
    fn lengths_beyond_the_input_are_malformed() {
        let fixed = [0u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let cases: Vec<Vec<u8>> = vec![
            fixed[..10].to_vec(),                                   // truncated fixed part
            [&fixed[..], &[0x7f, 0xff, 0xff, 0xff]].concat(),       // remark too long
            [&fixed[..], &[0xff, 0xff, 0xff, 0xff]].concat(),       // negative remark
            [&fixed[..], &[0, 0, 0, 0, 0, 0, 0, 9, 0, 1]].concat(), // section too long
            [&fixed[..], &[0, 0, 0, 0, 0, 0, 0, 3, 0, 5, b'k']].concat(), // key too long
            [&fixed[..], &[0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff]].concat(), // negative key
            [
                &fixed[..],
                &[0, 0, 0, 0, 0, 0, 0, 7, 0, 1, b'k', 0, 0, 0, 9],
            ]
            .concat(),
        ];
        for case in cases {
            let err = read_header(&case).unwrap_err();
            assert!(
                matches!(err, RemotingError::MalformedFrame(_)),
                "{case:?}: {err}"
            );
        }
    }

    #[test]
    fn codes_beyond_int16_are_rejected_on_encode() {
        let mut cmd = sample();
        cmd.code = 200_051;
        let err = write_header(&cmd, &mut BytesMut::new()).unwrap_err();
        assert!(err.to_string().contains("code 200051"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_replaced_like_java() {
        let mut h = vec![
            0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, b'a',
        ];
        h.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            read_header(&h).unwrap().remark.as_deref(),
            Some("\u{fffd}a")
        );
    }
}
