//! Message ids (PROTOCOL.md §5.6): the offset message id the broker derives
//! from where it stored a message, and the client's unique id (UNIQ_KEY).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{ModelError, Result};

/// Where the broker stored a message: its store host and commit-log offset,
/// rendered as the "offset message id" (uppercase hex of IP, port as int32,
/// offset as int64; 32 hex characters for IPv4, 56 for IPv6).
///
/// ```
/// use rocketmq_model::message::OffsetMessageId;
///
/// let id: OffsetMessageId = "0A00000100002A9F00000000000012AB".parse().unwrap();
/// assert_eq!(id.store_host, "10.0.0.1:10911".parse().unwrap());
/// assert_eq!(id.commit_log_offset, 0x12AB);
/// assert_eq!(id.to_string(), "0A00000100002A9F00000000000012AB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetMessageId {
    /// The broker's store address.
    pub store_host: SocketAddr,
    /// The message's offset in the broker's commit log.
    pub commit_log_offset: i64,
}

impl OffsetMessageId {
    /// The id of the message stored at `commit_log_offset` by `store_host`.
    pub fn new(store_host: SocketAddr, commit_log_offset: i64) -> Self {
        OffsetMessageId {
            store_host,
            commit_log_offset,
        }
    }

    /// Parses an id; upper- and lowercase hex are accepted. Exactly 32
    /// characters means IPv4 and 56 means IPv6; anything else is
    /// [`ModelError::InvalidMessageId`].
    pub fn parse(id: &str) -> Result<Self> {
        let invalid = |reason| ModelError::InvalidMessageId {
            id: id.to_owned(),
            reason,
        };
        let ip_len = match id.len() {
            32 => 4,
            56 => 16,
            _ => return Err(invalid("expected 32 (IPv4) or 56 (IPv6) hex characters")),
        };
        let bytes = decode_hex(id).ok_or_else(|| invalid("not hexadecimal"))?;
        let (ip, rest) = bytes.split_at(ip_len);
        let (port, offset) = rest.split_at(4);
        let port = i32::from_be_bytes(array(port));
        let port = u16::try_from(port).map_err(|_| invalid("port out of range"))?;
        let ip = match ip_len {
            4 => IpAddr::V4(Ipv4Addr::from(array::<4>(ip))),
            _ => IpAddr::V6(Ipv6Addr::from(array::<16>(ip))),
        };
        Ok(OffsetMessageId::new(
            SocketAddr::new(ip, port),
            i64::from_be_bytes(array(offset)),
        ))
    }
}

impl fmt::Display for OffsetMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(28);
        push_ip(&mut bytes, self.store_host.ip());
        bytes.extend_from_slice(&i32::from(self.store_host.port()).to_be_bytes());
        bytes.extend_from_slice(&self.commit_log_offset.to_be_bytes());
        f.write_str(&encode_hex(&bytes))
    }
}

impl FromStr for OffsetMessageId {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        OffsetMessageId::parse(s)
    }
}

/// Generates client unique message ids (the UNIQ_KEY property), as Java's
/// `MessageClientIDSetter` does.
///
/// An id is uppercase hex of: the client IP (4 or 16 bytes), the pid (int16),
/// a per-process constant (int32), the milliseconds since the start of the
/// current month (int32) and a wrapping counter (int16): 32 hex characters for
/// IPv4, 56 for IPv6.
///
/// The month starts at midnight **UTC** here; Java uses local time. Ids stay
/// unique either way; only Java's `getNearlyTimeFromID`, which reads the time
/// back, would be off by the client's UTC offset.
///
/// Shared by reference between threads: [`next_id`](Self::next_id) takes `&self`.
#[derive(Debug)]
pub struct UniqueIdGenerator {
    /// Hex of IP, pid and the per-process constant.
    prefix: String,
    counter: AtomicU16,
    /// The current month, as Java caches it (`startTime`, `nextStartTime`):
    /// its first millisecond shifted left by 5, its length in days in the
    /// low 5 bits. One word, so that a reader never sees half an update.
    month: AtomicI64,
}

impl UniqueIdGenerator {
    /// A generator for this process: `ip` is the client's address (`None`
    /// gives a 4-byte fake address, as Java does), the pid is this process's
    /// and the constant is random.
    pub fn new(ip: Option<IpAddr>) -> Self {
        let salt = RandomState::new().build_hasher().finish() as i32;
        Self::with_parts(ip, std::process::id(), salt)
    }

    /// A generator with every constant part given (tests, reproducible ids).
    /// The pid is truncated to 16 bits, as Java does.
    pub fn with_parts(ip: Option<IpAddr>, pid: u32, salt: i32) -> Self {
        let mut bytes = Vec::with_capacity(22);
        match ip {
            Some(ip) => push_ip(&mut bytes, ip),
            None => bytes.extend_from_slice(&fake_ip()),
        }
        bytes.extend_from_slice(&(pid as u16).to_be_bytes());
        bytes.extend_from_slice(&salt.to_be_bytes());
        UniqueIdGenerator {
            prefix: encode_hex(&bytes),
            counter: AtomicU16::new(0),
            // An empty month: the first id computes the real one.
            month: AtomicI64::new(0),
        }
    }

    /// The next id, stamped with the current time.
    pub fn next_id(&self) -> String {
        self.next_id_at(SystemTime::now())
    }

    /// The next id, stamped with `now`.
    pub fn next_id_at(&self, now: SystemTime) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let millis = self.month_millis(epoch_millis(now));
        let mut tail = [0u8; 6];
        tail[..4].copy_from_slice(&millis.to_be_bytes());
        tail[4..].copy_from_slice(&count.to_be_bytes());
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        push_hex(&mut id, &tail);
        id
    }

    /// [`month_millis`], with the month's bounds kept from the last call.
    fn month_millis(&self, now_ms: i64) -> i32 {
        let packed = self.month.load(Ordering::Relaxed);
        let (start, days) = (packed >> 5, packed & 31);
        if now_ms >= start && now_ms - start < days * DAY_MS {
            return (now_ms - start) as i32;
        }
        let (start, days) = month_of(now_ms);
        self.month.store((start << 5) | days, Ordering::Relaxed);
        (now_ms - start) as i32
    }
}

/// Milliseconds since the Unix epoch (negative before it).
fn epoch_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the first day of `now_ms`'s month, 00:00 UTC, as an
/// int32. Past day 24 this wraps, exactly as Java's `(int)` cast does.
#[cfg(test)]
fn month_millis(now_ms: i64) -> i32 {
    (now_ms - month_of(now_ms).0) as i32
}

/// The first millisecond (00:00 UTC on the first) and the length in days of
/// `now_ms`'s month.
fn month_of(now_ms: i64) -> (i64, i64) {
    let days = now_ms.div_euclid(DAY_MS);
    let (year, month, _) = civil_from_days(days);
    let first = days_from_civil(year, month, 1);
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let next = days_from_civil(next_year, next_month, 1);
    (first * DAY_MS, next - first)
}

// Howard Hinnant's proleptic-Gregorian date algorithms.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Java's `createFakeIP`: the low four bytes of the current epoch millis.
fn fake_ip() -> [u8; 4] {
    let [.., a, b, c, d] = epoch_millis(SystemTime::now()).to_be_bytes();
    [a, b, c, d]
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The first `N` bytes of `bytes` as an array (callers pass at least `N`).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn protocol_example() {
        let id = OffsetMessageId::parse("0A00000100002A9F00000000000012AB").unwrap();
        assert_eq!(
            id.store_host,
            "10.0.0.1:10911".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(id.commit_log_offset, 0x12AB);
        assert_eq!(id.to_string(), "0A00000100002A9F00000000000012AB");
        assert_eq!(
            OffsetMessageId::parse("0a00000100002a9f00000000000012ab").unwrap(),
            id
        );
    }

    #[test]
    fn ipv6_ids_have_56_chars() {
        let id = OffsetMessageId::new("[::1]:10911".parse().unwrap(), -1);
        let text = id.to_string();
        assert_eq!(text.len(), 56);
        assert_eq!(
            text,
            "0000000000000000000000000000000100002A9FFFFFFFFFFFFFFFFF"
        );
        assert_eq!(text.parse::<OffsetMessageId>().unwrap(), id);
    }

    #[test]
    fn bad_ids_are_typed_errors() {
        for bad in [
            "",
            "0A",
            "0A00000100002A9F00000000000012A",
            "0A00000100002A9F00000000000012AG",
            "0A000001FFFFFFFF00000000000012AB",
            "é0000100002A9F00000000000012AB0",
        ] {
            let err = OffsetMessageId::parse(bad).unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidMessageId { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn unique_ids_have_java_layout() {
        let ip: IpAddr = "192.168.1.2".parse().unwrap();
        let generator = UniqueIdGenerator::with_parts(Some(ip), 0x1_2345, 0x0BAD_F00D);
        // 2024-03-02T00:00:01.5Z: one day, one and a half seconds into March.
        let now = UNIX_EPOCH + Duration::from_millis(1_709_337_601_500);
        let first = generator.next_id_at(now);
        let second = generator.next_id_at(now);
        assert_eq!(
            first,
            format!("C0A80102{}{}{:08X}0000", "2345", "0BADF00D", 86_401_500)
        );
        assert_eq!(&second[..28], &first[..28]);
        assert_eq!(&second[28..], "0001");
        assert_eq!(first.len(), 32);
    }

    #[test]
    fn ipv6_and_fake_ips() {
        let v6 = UniqueIdGenerator::with_parts(Some("fe80::1".parse().unwrap()), 1, 2);
        assert_eq!(v6.next_id().len(), 56);
        let fake = UniqueIdGenerator::new(None);
        let id = fake.next_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
    }

    #[test]
    fn counter_wraps() {
        let generator = UniqueIdGenerator::with_parts(None, 1, 2);
        generator.counter.store(u16::MAX, Ordering::Relaxed);
        assert!(generator.next_id().ends_with("FFFF"));
        assert!(generator.next_id().ends_with("0000"));
    }

    #[test]
    fn the_kept_month_turns_over_at_midnight_on_the_first() {
        let generator = UniqueIdGenerator::with_parts(None, 1, 2);
        // The last millisecond of a leap February, the first of March, and
        // back (a clock stepped back).
        let last = 1_709_251_199_999;
        assert_eq!(
            generator.month_millis(last),
            (29 * 86_400_000i64 - 1) as i32
        );
        assert_eq!(generator.month_millis(last + 1), 0);
        assert_eq!(generator.month_millis(last + 86_400_000), 86_399_999);
        assert_eq!(
            generator.month_millis(last),
            (29 * 86_400_000i64 - 1) as i32
        );
        // December into January.
        let new_year = 1_735_689_600_000; // 2025-01-01T00:00:00Z
        assert_eq!(
            generator.month_millis(new_year - 1),
            (31 * 86_400_000i64 - 1) as i32
        );
        assert_eq!(generator.month_millis(new_year), 0);
    }

    #[test]
    fn month_start_is_utc_midnight_on_the_first() {
        // 2024-02-29T23:59:59.999Z is the last millisecond of a leap February.
        let last = 1_709_251_199_999;
        assert_eq!(month_millis(last), (29 * 86_400_000i64 - 1) as i32);
        assert_eq!(month_millis(last + 1), 0);
        assert_eq!(month_millis(0), 0);
        // 1969-12-31T23:59:59.999Z, before the epoch.
        assert_eq!(month_millis(-1), (31 * 86_400_000i64 - 1) as i32);
    }

    proptest! {
        #[test]
        fn offset_id_round_trip(v6 in any::<bool>(), v4 in any::<[u8; 4]>(), v6b in any::<[u8; 16]>(), port in any::<u16>(), offset in any::<i64>()) {
            let ip = if v6 { IpAddr::from(v6b) } else { IpAddr::from(v4) };
            let id = OffsetMessageId::new(SocketAddr::new(ip, port), offset);
            let text = id.to_string();
            prop_assert_eq!(text.len(), if v6 { 56 } else { 32 });
            prop_assert_eq!(OffsetMessageId::parse(&text).unwrap(), id);
        }

        #[test]
        fn the_kept_month_gives_what_a_fresh_one_does(times in proptest::collection::vec(-5_000_000_000_000i64..5_000_000_000_000, 1..20), nearby in proptest::collection::vec(-40i64 * 86_400_000..40 * 86_400_000, 1..20)) {
            let generator = UniqueIdGenerator::with_parts(None, 1, 2);
            for (time, step) in times.iter().zip(nearby.iter().cycle()) {
                for now in [*time, time + step, time - 1, time + 1] {
                    prop_assert_eq!(generator.month_millis(now), month_millis(now), "at {}", now);
                }
            }
        }

        #[test]
        fn month_millis_matches_days(days in -100_000i64..100_000, ms in 0i64..86_400_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
            let got = month_millis(days * 86_400_000 + ms);
            prop_assert_eq!(got, (i64::from(d - 1) * 86_400_000 + ms) as i32);
        }
    }
}
