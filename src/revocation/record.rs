//! One revocation record and its line in the list file:
//!
//! ```text
//! jti 3q2-7wAbXk1h0Yb8l3vS9Q 1767225600 5e0c9a1f
//! ```
//!
//! kind, identifier, expiry (Unix seconds) and a CRC-32 of the three fields
//! before it, separated by single spaces and ended by `\n`. The checksum
//! tells a torn or garbled line from a record.

use sha2::{Digest, Sha256};

/// Longest identifier a record may carry.
pub const MAX_ID_LEN: usize = 128;

/// What an identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A token's `jti` (access or refresh token).
    Jti,
    /// A refresh-token family: every token carrying the family id.
    Family,
    /// A used authorization code's id.
    Code,
    /// Every token of a client issued at or before a time: the id is
    /// `<time>:<subject>` ([`Record::not_before`]).
    Client,
    /// Every token of a user issued at or before a time, as for `Client`.
    User,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Jti,
        Kind::Family,
        Kind::Code,
        Kind::Client,
        Kind::User,
    ];

    /// The name written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Jti => "jti",
            Kind::Family => "family",
            Kind::Code => "code",
            Kind::Client => "client",
            Kind::User => "user",
        }
    }

    /// The kind named `s` (as [`Self::name`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A revocation: `id` of `kind` must be refused until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// What `id` names.
    pub kind: Kind,
    /// The identifier: 1 to [`MAX_ID_LEN`] printable ASCII characters, no
    /// spaces.
    pub id: String,
    /// Unix seconds after which the entry may be forgotten.
    pub expires: u64,
}

/// The in-memory key of a record: 96 bits of SHA-256 over kind and id.
/// Collisions are negligible (about 2^-57 among a million entries) and
/// could only make a token look revoked, never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(pub(crate) [u8; 12]);

impl Key {
    /// The key of `id` of `kind`.
    pub fn new(kind: Kind, id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(kind.name().as_bytes());
        h.update([0]);
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut key = [0u8; 12];
        key.copy_from_slice(&digest[..12]);
        Self(key)
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not four space-separated fields of the right shapes.
    #[error("not a record")]
    Malformed,
    /// The fields do not match their checksum.
    #[error("checksum mismatch")]
    Checksum,
}

impl Record {
    /// A record, if `id` is a valid identifier.
    pub fn new(kind: Kind, id: &str, expires: u64) -> Option<Self> {
        valid_id(id).then(|| Self {
            kind,
            id: id.to_string(),
            expires,
        })
    }

    /// A "not before" record of `kind` ([`Kind::Client`] or
    /// [`Kind::User`]): the tokens of `name` at `issuer` with `iat` at or
    /// before `cutoff` are revoked, until `expires`. Names are kept as a
    /// hash ([`subject`]), never in the clear.
    pub fn not_before(kind: Kind, issuer: &str, name: &str, cutoff: u64, expires: u64) -> Self {
        Self {
            kind,
            id: format!("{cutoff}:{}", hex::encode(subject(issuer, name))),
            expires,
        }
    }

    /// Of a "not before" record: its subject and cutoff.
    pub fn cutoff(&self) -> Option<([u8; 16], u64)> {
        if !matches!(self.kind, Kind::Client | Kind::User) {
            return None;
        }
        let (cutoff, hash) = self.id.split_once(':')?;
        let mut subject = [0u8; 16];
        hex::decode_to_slice(hash, &mut subject).ok()?;
        Some((subject, cutoff.parse().ok()?))
    }

    /// The in-memory key.
    pub fn key(&self) -> Key {
        Key::new(self.kind, &self.id)
    }

    /// Appends the record's line, `\n` included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.kind.name().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.id.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.expires.to_string().as_bytes());
        let crc = crc32(&out[start..]);
        out.extend_from_slice(format!(" {crc:08x}\n").as_bytes());
    }

    /// Parses one line (without its `\n`).
    pub fn parse(line: &[u8]) -> Result<Self, LineError> {
        let split = line
            .iter()
            .rposition(|&b| b == b' ')
            .ok_or(LineError::Malformed)?;
        let (fields, crc) = (&line[..split], &line[split + 1..]);
        let crc = std::str::from_utf8(crc)
            .ok()
            .filter(|c| c.len() == 8)
            .and_then(|c| u32::from_str_radix(c, 16).ok())
            .ok_or(LineError::Malformed)?;
        let text = std::str::from_utf8(fields).map_err(|_| LineError::Malformed)?;
        let mut parts = text.split(' ');
        let (Some(kind), Some(id), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LineError::Malformed);
        };
        let kind = Kind::parse(kind).ok_or(LineError::Malformed)?;
        let expires = expires
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| expires.parse::<u64>().ok())
            .flatten()
            .ok_or(LineError::Malformed)?;
        if crc32(fields) != crc {
            return Err(LineError::Checksum);
        }
        Record::new(kind, id, expires).ok_or(LineError::Malformed)
    }
}

/// The subject of a "not before" record: 128 bits of SHA-256 over the
/// tenant's issuer and the client id or username.
pub fn subject(issuer: &str, name: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Whether `id` can be a record's id: 1 to `MAX_ID_LEN` visible ASCII
/// characters.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// CRC-32 (IEEE 802.3, as zlib and PNG use it).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn line_round_trip_and_damage() {
        let r = Record::new(Kind::Jti, "abc-DEF_123", 1_767_225_600).unwrap();
        let mut line = Vec::new();
        r.encode(&mut line);
        assert!(line.starts_with(b"jti abc-DEF_123 1767225600 "));
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        assert_eq!(Record::parse(body), Ok(r));
        let mut flipped = body.to_vec();
        flipped[5] ^= 0x01;
        assert_eq!(Record::parse(&flipped), Err(LineError::Checksum));
        for cut in 0..body.len() {
            assert!(Record::parse(&body[..cut]).is_err(), "prefix {cut} parsed");
        }
        assert!(Record::parse(b"jti a b 00000000").is_err());
        assert!(Record::parse(b"token a 1 00000000").is_err());
        assert!(Record::parse(&[0u8; 40]).is_err());
    }

    #[test]
    fn the_readme_example_is_a_record() {
        let readme = include_str!("../../README.md");
        let line = readme
            .lines()
            .find(|l| l.starts_with("jti ") && l.split(' ').count() == 4)
            .expect("an example record in the README");
        assert!(Record::parse(line.as_bytes()).is_ok(), "{line}");
    }

    #[test]
    fn invalid_identifiers_are_refused() {
        assert!(Record::new(Kind::Jti, "", 1).is_none());
        assert!(Record::new(Kind::Jti, "a b", 1).is_none());
        assert!(Record::new(Kind::Jti, "a\nb", 1).is_none());
        assert!(Record::new(Kind::Jti, &"a".repeat(MAX_ID_LEN + 1), 1).is_none());
        assert!(Record::new(Kind::Code, &"a".repeat(MAX_ID_LEN), 1).is_some());
    }

    #[test]
    fn not_before_records_round_trip_and_hide_the_name() {
        let r = Record::not_before(
            Kind::User,
            "https://a.test",
            "alice@example.com",
            1_700_000_000,
            1_700_003_600,
        );
        let mut line = Vec::new();
        r.encode(&mut line);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.starts_with("user 1700000000:"), "{text}");
        assert!(!text.contains("alice"));
        let parsed = Record::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            parsed.cutoff(),
            Some((
                subject("https://a.test", "alice@example.com"),
                1_700_000_000
            ))
        );
        assert_ne!(
            subject("https://a.test", "x"),
            subject("https://b.test", "x")
        );
        assert_eq!(Record::new(Kind::Jti, "1:ab", 1).unwrap().cutoff(), None);
        assert_eq!(Record::new(Kind::User, "junk", 1).unwrap().cutoff(), None);
    }

    #[test]
    fn kinds_have_distinct_keys() {
        assert_ne!(Key::new(Kind::Jti, "x"), Key::new(Kind::Family, "x"));
        assert_eq!(Key::new(Kind::Code, "x"), Key::new(Kind::Code, "x"));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(id in "[!-~]{1,128}", expires in any::<u64>(), k in 0usize..Kind::ALL.len()) {
            let r = Record::new(Kind::ALL[k], &id, expires).unwrap();
            let mut line = Vec::new();
            r.encode(&mut line);
            prop_assert_eq!(Record::parse(&line[..line.len() - 1]), Ok(r));
        }
    }
}
