//! Per-trial tokens: an HMAC-SHA256 of one attempt's identity (experiment, its incarnation, trial,
//! attempt) under a server secret kept in the data dir. A token proves "I am this attempt of this
//! trial of this very experiment" and nothing more: an experiment deleted and created again under
//! its name has a new incarnation, so the old tokens are worthless; a retried trial's new attempt
//! gets a new token; and the API takes a token only while its attempt is the trial's open one.
//! The server needs no table of issued tokens, and a restarted server accepts the tokens its
//! trials already hold. Also here: the check that a server's own API token is strong enough.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the server secret at {path}")]
    ReadSecret {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write the server secret at {path}")]
    WriteSecret {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the server secret at {path} is damaged (expected 64 hex digits); delete it to make a new one, which invalidates the tokens of running trials"
    )]
    BadSecret { path: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The secret every trial token derives from.
#[derive(Clone)]
pub struct TrialSecret([u8; 32]);

impl std::fmt::Debug for TrialSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrialSecret(…)")
    }
}

impl TrialSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the secret from `file`, or makes one (readable by the owner only) when there is none.
    pub fn load_or_create(file: &Path) -> Result<Self> {
        let path = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => decode_hex(text.trim()).map(Self).ok_or(Error::BadSecret { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Self(rand::random());
                write_private(file, encode_hex(&secret.0).as_bytes())
                    .map_err(|source| Error::WriteSecret { path, source })?;
                Ok(secret)
            }
            Err(source) => Err(Error::ReadSecret { path, source }),
        }
    }

    /// The token of one attempt.
    pub fn token(&self, holder: &Holder<'_>) -> String {
        encode_hex(&self.mac(holder).finalize().into_bytes())
    }

    /// Whether `token` is the token of this attempt (compared in constant time).
    pub fn verify(&self, holder: &Holder<'_>, token: &str) -> bool {
        decode_hex::<32>(token).is_some_and(|bytes| self.mac(holder).verify_slice(&bytes).is_ok())
    }

    fn mac(&self, holder: &Holder<'_>) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        // A 0 byte separates the parts (no name holds one), so ("a", "bc") ≠ ("ab", "c").
        for part in [holder.experiment, holder.incarnation, holder.trial] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.update(&holder.attempt.to_be_bytes());
        mac
    }
}

/// Whose token it is: one attempt of one trial of one incarnation of an experiment.
#[derive(Clone, Copy, Debug)]
pub struct Holder<'a> {
    pub experiment: &'a str,
    /// The experiment's UID, new each time an experiment is created (also under an old name).
    pub incarnation: &'a str,
    pub trial: &'a str,
    /// The attempt, from 1.
    pub attempt: u32,
}

/// The least entropy a server's API token must have: 16 bytes, as a random 128-bit key.
const MIN_TOKEN_BITS: f64 = 128.0;

/// Tokens shipped as examples, refused whatever their length.
const PLACEHOLDERS: &[&str] = &["change-me-before-applying", "changeme", "change-me", "token", "secret", "password"];

/// Why a server's API token is refused, if it is: empty, a known placeholder, or guessable (less
/// than 16 bytes of entropy, estimated from its length and the characters it draws on).
pub fn weak_api_token(token: &str) -> Option<String> {
    let how = "make one with `openssl rand -hex 32` (or `head -c 32 /dev/urandom | base64`)";
    if PLACEHOLDERS.contains(&token.trim().to_lowercase().as_str()) {
        return Some(format!("the token is the placeholder {token:?}; {how}"));
    }
    let bits = entropy_bits(token);
    (bits < MIN_TOKEN_BITS)
        .then(|| format!("the token is too weak (about {bits:.0} bits; at least {MIN_TOKEN_BITS:.0} needed); {how}"))
}

/// Length × log2 of the alphabet the token draws on (hex, alphanumeric, base64, printable), with
/// repeated characters counted once per distinct character when that is fewer.
fn entropy_bits(token: &str) -> f64 {
    let chars: Vec<char> = token.chars().collect();
    let alphabet = if chars.iter().all(char::is_ascii_hexdigit) {
        16.0
    } else if chars.iter().all(char::is_ascii_alphanumeric) {
        62.0
    } else if chars.iter().all(|c| c.is_ascii_alphanumeric() || "+/=-_".contains(*c)) {
        66.0
    } else {
        95.0
    };
    let distinct = chars.iter().collect::<std::collections::BTreeSet<_>>().len() as f64;
    let per_char = f64::log2(alphabet).min(f64::log2(distinct.max(1.0)).max(1.0) + 1.0);
    chars.len() as f64 * per_char
}

fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(
        experiment: &'static str,
        incarnation: &'static str,
        trial: &'static str,
        attempt: u32,
    ) -> Holder<'static> {
        Holder { experiment, incarnation, trial, attempt }
    }

    #[test]
    fn a_token_is_valid_for_its_attempt_of_its_trial_of_its_incarnation_only() {
        let secret = TrialSecret::from_bytes([7; 32]);
        let token = secret.token(&holder("exp", "u1", "exp-0001", 1));
        assert!(secret.verify(&holder("exp", "u1", "exp-0001", 1), &token));
        assert!(!secret.verify(&holder("exp", "u1", "exp-0002", 1), &token), "another trial");
        assert!(!secret.verify(&holder("other", "u1", "exp-0001", 1), &token), "another experiment");
        assert!(!secret.verify(&holder("exp", "u2", "exp-0001", 1), &token), "the same name created again");
        assert!(!secret.verify(&holder("exp", "u1", "exp-0001", 2), &token), "the next attempt");
        assert!(!secret.verify(&holder("exp", "u1", "exp-0001", 1), "not-a-token"));
        assert!(!TrialSecret::from_bytes([8; 32]).verify(&holder("exp", "u1", "exp-0001", 1), &token));
        let split = secret.token(&holder("ab", "", "c", 1));
        assert!(!secret.verify(&holder("a", "b", "c", 1), &split), "parts are kept apart");
    }

    #[test]
    fn weak_api_tokens_are_refused_with_the_way_to_make_a_strong_one() {
        for weak in [
            "",
            "x",
            "s3cret",
            "change-me-before-applying",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "0123456789abcdef",
        ] {
            let why = weak_api_token(weak).unwrap_or_else(|| panic!("{weak:?} was accepted"));
            assert!(why.contains("openssl rand -hex 32"), "{why}");
        }
        let hex32 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        for strong in [hex32, "q3Zt8Kp1Lx0Vb7Rm2Nc5Wd9Yf4Hg6Js", "Kx/9mQ+2vL8sT1rN4wZ7yB0cF3hJ6dG5eA=="] {
            assert_eq!(weak_api_token(strong), None, "{strong}");
        }
    }

    #[test]
    fn the_secret_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let a = TrialSecret::load_or_create(&file).unwrap();
        let b = TrialSecret::load_or_create(&file).unwrap();
        assert_eq!(a.token(&holder("e", "u", "t", 1)), b.token(&holder("e", "u", "t", 1)));
        std::fs::write(&file, "garbage").unwrap();
        assert!(TrialSecret::load_or_create(&file).is_err());
    }
}
