//! Keys and values: keys sort by experiment, then trial index, then arrival; values are JSON, so a
//! stored record can be read with any tool and new optional fields stay readable.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, Result};

/// Everything of one experiment starts with its name and a 0 byte (names never hold one).
pub fn experiment_prefix(experiment: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(experiment.len() + 1);
    key.extend_from_slice(experiment.as_bytes());
    key.push(0);
    key
}

pub fn trial_key(experiment: &str, index: u32) -> Vec<u8> {
    let mut key = experiment_prefix(experiment);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub fn observation_key(experiment: &str, index: u32, seq: u64) -> Vec<u8> {
    let mut key = trial_key(experiment, index);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The arrival number at the end of an observation's key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Encode { what: what.to_string(), source })
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Decode { what: what(), source })
}
