//! Room passwords: proven with CPace, bound to the Noise session, never sent.
//!
//! ```text
//! joiner                                         room server
//!   PasswordStart  (CPace Ya, 48 bytes)   ->
//!                                          <-    PasswordReply (CPace Yb, server proof)
//!   PasswordConfirm (joiner proof)         ->    admitted: Hello, roster, audio
//! ```
//!
//! Both sides run CPace (draft-irtf-cfrg-cpace, ristretto255 and SHA-512, through the
//! `pake-cpace` crate) with the room password and, as associated data, the **Noise
//! handshake hash** of the session the messages travel in. Each then proves it derived
//! the same key with a BLAKE2s MAC over a role label and the handshake hash.
//!
//! Why this is sound:
//!
//! * CPace is a balanced PAKE: its messages are uniformly random group elements to
//!   anyone without the password, so a passive observer (who sees nothing anyway, the
//!   messages are inside Noise) or an active attacker learns nothing it could test a
//!   password guess against offline. An active attacker who runs the protocol tests
//!   exactly one guess per run; the server rate-limits failed runs per address.
//! * Channel binding: the generator CPace derives hashes the handshake hash in, so the
//!   key only agrees when both ends are in the *same* Noise session. A man in the
//!   middle who terminates Noise on both sides has two different handshake hashes;
//!   relaying the CPace messages between them yields keys that do not match, and the
//!   proofs fail. To get further it would have to run CPace itself, with a password
//!   guess: one online guess per attempt.
//! * The password never becomes a Noise PSK (a low-entropy PSK invites offline
//!   guessing from a recorded handshake), and is never sent in any form that can be
//!   checked against a guess without running the protocol.
//! * The server proves itself first, but only after the joiner has committed to its
//!   CPace message, so a fake server also gets one guess per connection. The joiner's
//!   client refuses to send audio until the server's proof has verified.

use blake2::Blake2sMac256;
use blake2::digest::{KeyInit, Mac};
use pake_cpace::CPace;
use zeroize::Zeroizing;

pub const START_LEN: usize = pake_cpace::STEP1_PACKET_BYTES;
pub const REPLY_LEN: usize = pake_cpace::STEP2_PACKET_BYTES;
pub const PROOF_LEN: usize = 32;

const ID_JOINER: &str = "viz/1 joiner";
const ID_SERVER: &str = "viz/1 room server";
const SERVER_PROOF_LABEL: &[u8] = b"viz/1 room password: server proof";
const JOINER_PROOF_LABEL: &[u8] = b"viz/1 room password: joiner proof";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The proof did not verify: a different password (or someone in between).
    #[error("wrong password")]
    Mismatch,
    /// The peer's CPace message is not a valid group element.
    #[error("malformed password message")]
    Malformed,
    #[error("no randomness available")]
    Random,
}

fn cpace_err(e: pake_cpace::Error) -> PasswordError {
    match e {
        pake_cpace::Error::Random(_) => PasswordError::Random,
        _ => PasswordError::Malformed,
    }
}

fn proof(key: &[u8; 32], label: &[u8], handshake_hash: &[u8; 32]) -> Blake2sMac256 {
    // BLAKE2s-MAC keys are exactly 32 bytes here, so this constructor cannot fail.
    let mut mac = <Blake2sMac256 as KeyInit>::new(&(*key).into());
    mac.update(label);
    mac.update(handshake_hash);
    mac
}

/// The joiner's half, between sending its start and receiving the reply.
pub struct JoinerPassword {
    step1: pake_cpace::Step1Out,
    handshake_hash: [u8; 32],
}

impl std::fmt::Debug for JoinerPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinerPassword(<redacted>)")
    }
}

impl JoinerPassword {
    /// Starts the exchange; send the returned message as `PasswordStart`.
    pub fn start(password: &str, handshake_hash: [u8; 32]) -> Result<(Self, [u8; START_LEN]), PasswordError> {
        let step1 = CPace::step1(password, ID_JOINER, ID_SERVER, Some(handshake_hash)).map_err(cpace_err)?;
        let packet = step1.packet();
        Ok((Self { step1, handshake_hash }, packet))
    }

    /// Checks the server's reply; on success returns the joiner's proof to send as
    /// `PasswordConfirm`.
    pub fn finish(
        self,
        reply: &[u8; REPLY_LEN],
        server_proof: &[u8; PROOF_LEN],
    ) -> Result<[u8; PROOF_LEN], PasswordError> {
        let keys = self.step1.step3(reply).map_err(cpace_err)?;
        let (k1, k2) = (Zeroizing::new(keys.k1), Zeroizing::new(keys.k2));
        proof(&k2, SERVER_PROOF_LABEL, &self.handshake_hash)
            .verify_slice(server_proof)
            .map_err(|_| PasswordError::Mismatch)?;
        Ok(proof(&k1, JOINER_PROOF_LABEL, &self.handshake_hash).finalize().into_bytes().into())
    }
}

/// The server's half, between sending its reply and receiving the joiner's proof.
pub struct ServerPassword {
    expected: Zeroizing<[u8; 32]>,
    handshake_hash: [u8; 32],
}

impl std::fmt::Debug for ServerPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerPassword(<redacted>)")
    }
}

impl ServerPassword {
    /// Answers a joiner's start: returns the state to keep and `(reply, server proof)`
    /// to send as `PasswordReply`.
    pub fn respond(
        password: &str,
        handshake_hash: [u8; 32],
        start: &[u8; START_LEN],
    ) -> Result<(Self, [u8; REPLY_LEN], [u8; PROOF_LEN]), PasswordError> {
        let step2 = CPace::step2(start, password, ID_JOINER, ID_SERVER, Some(handshake_hash)).map_err(cpace_err)?;
        let keys = step2.shared_keys();
        let (k1, k2) = (Zeroizing::new(keys.k1), Zeroizing::new(keys.k2));
        let server_proof = proof(&k2, SERVER_PROOF_LABEL, &handshake_hash).finalize().into_bytes().into();
        Ok((Self { expected: Zeroizing::new(*k1), handshake_hash }, step2.packet(), server_proof))
    }

    /// Constant-time check of the joiner's proof.
    pub fn verify(&self, joiner_proof: &[u8; PROOF_LEN]) -> Result<(), PasswordError> {
        proof(&self.expected, JOINER_PROOF_LABEL, &self.handshake_hash)
            .verify_slice(joiner_proof)
            .map_err(|_| PasswordError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        joiner_pw: &str,
        server_pw: &str,
        joiner_hash: [u8; 32],
        server_hash: [u8; 32],
    ) -> Result<(), PasswordError> {
        let (joiner, start) = JoinerPassword::start(joiner_pw, joiner_hash)?;
        let (server, reply, server_proof) = ServerPassword::respond(server_pw, server_hash, &start)?;
        let joiner_proof = joiner.finish(&reply, &server_proof)?;
        server.verify(&joiner_proof)
    }

    #[test]
    fn same_password_same_session_agrees() {
        run("correct horse", "correct horse", [7; 32], [7; 32]).unwrap();
        run("", "", [1; 32], [1; 32]).unwrap();
        run(&"é".repeat(300), &"é".repeat(300), [1; 32], [1; 32]).unwrap();
    }

    #[test]
    fn wrong_password_fails_at_the_joiner() {
        assert_eq!(run("correct horse", "battery staple", [7; 32], [7; 32]), Err(PasswordError::Mismatch));
    }

    #[test]
    fn relaying_between_two_sessions_fails() {
        // A man in the middle with two Noise sessions has two handshake hashes.
        assert_eq!(run("pw", "pw", [1; 32], [2; 32]), Err(PasswordError::Mismatch));
    }

    #[test]
    fn a_forged_joiner_proof_is_refused() {
        let (_joiner, start) = JoinerPassword::start("pw", [3; 32]).unwrap();
        let (server, _, server_proof) = ServerPassword::respond("pw", [3; 32], &start).unwrap();
        assert_eq!(server.verify(&[0; 32]), Err(PasswordError::Mismatch));
        // Echoing the server's own proof back is not a joiner proof either.
        assert_eq!(server.verify(&server_proof), Err(PasswordError::Mismatch));
    }

    #[test]
    fn invalid_group_elements_are_errors_not_panics() {
        let mut start = [0xffu8; START_LEN];
        assert!(ServerPassword::respond("pw", [0; 32], &start).is_err());
        start[16..].fill(0); // the identity element
        assert!(ServerPassword::respond("pw", [0; 32], &start).is_err());
        let (joiner, _) = JoinerPassword::start("pw", [0; 32]).unwrap();
        assert_eq!(joiner.finish(&[0xff; REPLY_LEN], &[0; 32]), Err(PasswordError::Malformed));
    }
}
