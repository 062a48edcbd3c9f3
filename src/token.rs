//! Per-trial tokens: an HMAC-SHA256 of the trial's identity under a server secret kept in the data
//! dir. A token proves "I am this trial of this experiment" and nothing more; the server needs no
//! table of issued tokens, and a restarted server accepts the tokens its trials already hold.

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

    /// The token of one trial.
    pub fn token(&self, experiment: &str, trial: &str) -> String {
        encode_hex(&self.mac(experiment, trial).finalize().into_bytes())
    }

    /// Whether `token` is the token of this trial (compared in constant time).
    pub fn verify(&self, experiment: &str, trial: &str, token: &str) -> bool {
        decode_hex::<32>(token).is_some_and(|bytes| self.mac(experiment, trial).verify_slice(&bytes).is_ok())
    }

    fn mac(&self, experiment: &str, trial: &str) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        // The 0 byte separates the two names (neither can hold one), so ("a", "bc") ≠ ("ab", "c").
        mac.update(experiment.as_bytes());
        mac.update(&[0]);
        mac.update(trial.as_bytes());
        mac
    }
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

    #[test]
    fn a_token_is_valid_for_its_trial_only() {
        let secret = TrialSecret::from_bytes([7; 32]);
        let token = secret.token("exp", "exp-0001");
        assert!(secret.verify("exp", "exp-0001", &token));
        assert!(!secret.verify("exp", "exp-0002", &token));
        assert!(!secret.verify("other", "exp-0001", &token));
        assert!(!secret.verify("exp", "exp-0001", "not-a-token"));
        assert!(!TrialSecret::from_bytes([8; 32]).verify("exp", "exp-0001", &token));
    }

    #[test]
    fn the_secret_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let a = TrialSecret::load_or_create(&file).unwrap();
        let b = TrialSecret::load_or_create(&file).unwrap();
        assert_eq!(a.token("e", "t"), b.token("e", "t"));
        std::fs::write(&file, "garbage").unwrap();
        assert!(TrialSecret::load_or_create(&file).is_err());
    }
}
