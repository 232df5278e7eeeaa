//! Static identities, host fingerprints and short authentication strings.
//!
//! * Every host and device has a persistent X25519 static key, its Noise `s`.
//! * A **fingerprint** names a public key for people: the first 100 bits of
//!   BLAKE2s-256("viz fingerprint v1" ‖ key) in RFC 4648 base32 (lower case, no 0/1/8/9
//!   to misread), shown as five groups of four, e.g. `k3xq-7m2a-pq4z-rt6b-ya2c`. A
//!   second-preimage attack on 100 bits is far out of reach; the fingerprint goes in the
//!   join address (`viz://host:port#fingerprint`).
//! * A **SAS** (short authentication string) is six digits derived from the Noise
//!   handshake hash, which both ends share only if nobody sits in between; people
//!   compare it aloud. A man in the middle runs two handshakes with different hashes and
//!   has a one-in-a-million chance that the two SAS match.
//!
//! No file I/O here: the runtime stores the key with [`Keypair::to_file_contents`] and
//! reads it back with [`Keypair::from_file_contents`].

use std::fmt;

use blake2::{Blake2s256, Digest};
use zeroize::Zeroizing;

use crate::handshake::NOISE_PARAMS;

pub const KEY_LEN: usize = 32;
const FINGERPRINT_CHARS: usize = 20;
const FILE_HEADER: &str = "viz-identity-v1";

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Blake2s256::new().chain_update(b"viz fingerprint v1").chain_update(self.0).finalize();
        let mut text = data_encoding::BASE32_NOPAD.encode(&digest).to_ascii_lowercase();
        text.truncate(FINGERPRINT_CHARS);
        Fingerprint(text)
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(s.trim().as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// A static key pair. The private half is zeroed on drop and never printed.
#[derive(Clone)]
pub struct Keypair {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair").field("public", &self.public).field("private", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("not a viz identity file (expected a first line '{FILE_HEADER}')")]
    Header,
    #[error("the identity file's key is not 64 hexadecimal digits")]
    Key,
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

impl Keypair {
    /// A fresh random key pair from the operating system's RNG.
    pub fn generate() -> Result<Self, IdentityError> {
        let params = NOISE_PARAMS.parse().map_err(|e: snow::Error| IdentityError::Generate(e.to_string()))?;
        let kp = snow::Builder::new(params).generate_keypair().map_err(|e| IdentityError::Generate(e.to_string()))?;
        let private: [u8; KEY_LEN] = kp.private.as_slice().try_into().map_err(|_| IdentityError::Key)?;
        Ok(Self::from_private(private))
    }

    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(private);
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { private: Zeroizing::new(private), public }
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    pub(crate) fn private_bytes(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// Text to store in the identity file (keep it mode 0600).
    pub fn to_file_contents(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{FILE_HEADER}\n{}\n# public key fingerprint: {}\n",
            data_encoding::HEXLOWER.encode(&*self.private),
            self.fingerprint()
        ))
    }

    pub fn from_file_contents(text: &str) -> Result<Self, IdentityError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(FILE_HEADER) {
            return Err(IdentityError::Header);
        }
        let hex = lines.next().ok_or(IdentityError::Key)?;
        let bytes =
            Zeroizing::new(data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).map_err(|_| IdentityError::Key)?);
        let private: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| IdentityError::Key)?;
        Ok(Self::from_private(private))
    }
}

/// Human-checkable name of a public key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Parses what a person typed or pasted: case, dashes and spaces do not matter.
    pub fn parse(s: &str) -> Option<Self> {
        let norm: String = s.chars().filter(|c| !matches!(c, '-' | ' ' | ':')).collect::<String>().to_ascii_lowercase();
        let valid = norm.len() == FINGERPRINT_CHARS
            && norm.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        valid.then_some(Self(norm))
    }

    /// The compact form without dashes.
    pub fn compact(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.0.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Six-digit short authentication string for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sas(u32);

impl Sas {
    pub fn from_handshake_hash(hash: &[u8]) -> Self {
        let digest = Blake2s256::new().chain_update(b"viz sas v1").chain_update(hash).finalize();
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Sas(n % 1_000_000)
    }
}

impl fmt::Display for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_redaction() {
        let kp = Keypair::generate().unwrap();
        let text = kp.to_file_contents();
        let back = Keypair::from_file_contents(&text).unwrap();
        assert_eq!(back.public(), kp.public());
        assert!(!format!("{kp:?}").contains(&data_encoding::HEXLOWER.encode(kp.private_bytes())));
        assert!(matches!(Keypair::from_file_contents("hello"), Err(IdentityError::Header)));
        assert!(matches!(Keypair::from_file_contents("viz-identity-v1\nzz"), Err(IdentityError::Key)));
        assert!(matches!(Keypair::from_file_contents("viz-identity-v1\n"), Err(IdentityError::Key)));
        assert!(matches!(
            Keypair::from_file_contents(&format!("viz-identity-v1\n{}", "ab".repeat(31))),
            Err(IdentityError::Key)
        ));
    }

    #[test]
    fn fingerprint_format_and_parsing() {
        let kp = Keypair::from_private([7; 32]);
        let fp = kp.fingerprint();
        let shown = fp.to_string();
        assert_eq!(shown.len(), 24);
        assert_eq!(shown.matches('-').count(), 4);
        assert_eq!(Fingerprint::parse(&shown), Some(fp.clone()));
        assert_eq!(Fingerprint::parse(&shown.to_uppercase().replace('-', " ")), Some(fp.clone()));
        assert_eq!(Fingerprint::parse(fp.compact()), Some(fp.clone()));
        assert_eq!(Fingerprint::parse("abcd"), None);
        assert_eq!(Fingerprint::parse("0000-0000-0000-0000-0000"), None);
        assert_ne!(Keypair::from_private([8; 32]).fingerprint(), fp);
        // Same key, same fingerprint: it is a pure function of the public key.
        assert_eq!(Keypair::from_private([7; 32]).fingerprint(), fp);
    }

    #[test]
    fn public_key_hex() {
        let pk = Keypair::from_private([1; 32]).public();
        assert_eq!(PublicKey::from_hex(&pk.to_hex()), Some(pk));
        assert_eq!(PublicKey::from_hex("00"), None);
    }

    #[test]
    fn sas_is_six_digits() {
        let s = Sas::from_handshake_hash(&[1, 2, 3]);
        assert_eq!(s.to_string().len(), 7);
        assert_ne!(s, Sas::from_handshake_hash(&[1, 2, 4]));
    }
}
