//! What an admin set for a participant, kept per client identity (static key) across
//! reconnects and server restarts.
//!
//! One small JSON file, rewritten whole on every change with write + fsync + rename +
//! directory fsync ([`viz_client::store::write_atomic`]): a server killed at any
//! moment leaves either the old file or the new one, never a torn one. A change is
//! acknowledged to the admin only after that write returned, so nothing acknowledged
//! is lost. Only identities an admin touched are stored; a load test's thousand
//! throwaway keys leave no trace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use viz_proto::PublicKey;

pub const FILE_NAME: &str = "participants.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Display name set by an admin; `None` keeps the name the client gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "unity")]
    pub gain_percent: u16,
    #[serde(default)]
    pub muted: bool,
}

fn unity() -> u16 {
    100
}

impl Default for Settings {
    fn default() -> Self {
        Self { name: None, gain_percent: 100, muted: false }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    /// Keyed by the hex of the participant's static public key.
    participants: BTreeMap<String, Settings>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not a Viz participants file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot save settings to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

#[derive(Debug)]
pub struct SettingsStore {
    path: PathBuf,
    entries: BTreeMap<String, Settings>,
}

impl SettingsStore {
    /// Opens `dir/participants.json`; a missing file is an empty store.
    pub fn open(dir: &Path) -> Result<Self, SettingsError> {
        let path = dir.join(FILE_NAME);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let parsed: FileFormat = serde_json::from_str(&text)
                    .map_err(|e| SettingsError::Parse { path: path.clone(), reason: e.to_string() })?;
                parsed.participants
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(SettingsError::Read { path, reason: e.to_string() }),
        };
        Ok(Self { path, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &PublicKey) -> Settings {
        self.entries.get(&key.to_hex()).cloned().unwrap_or_default()
    }

    /// Changes one identity's settings and makes the change durable before returning.
    /// On error nothing changes, in memory or on disk.
    pub fn update(&mut self, key: &PublicKey, change: impl FnOnce(&mut Settings)) -> Result<Settings, SettingsError> {
        let hex = key.to_hex();
        let before = self.entries.get(&hex).cloned();
        let mut s = before.clone().unwrap_or_default();
        change(&mut s);
        if before.as_ref() == Some(&s) {
            return Ok(s);
        }
        self.entries.insert(hex.clone(), s.clone());
        if let Err(e) = self.save() {
            match before {
                Some(b) => self.entries.insert(hex, b),
                None => self.entries.remove(&hex),
            };
            return Err(e);
        }
        Ok(s)
    }

    fn save(&self) -> Result<(), SettingsError> {
        let file = FileFormat { version: 1, participants: self.entries.clone() };
        let mut text = serde_json::to_string_pretty(&file)
            .map_err(|e| SettingsError::Write { path: self.path.clone(), reason: e.to_string() })?;
        text.push('\n');
        viz_client::store::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| SettingsError::Write { path: self.path.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_reopening_and_failed_writes_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let alice = PublicKey([1; 32]);
        let bob = PublicKey([2; 32]);
        let mut store = SettingsStore::open(dir.path()).unwrap();
        assert_eq!(store.get(&alice), Settings::default());
        store.update(&alice, |s| s.gain_percent = 150).unwrap();
        store.update(&alice, |s| s.name = Some("Alice".into())).unwrap();
        store.update(&bob, |s| s.muted = true).unwrap();
        let reopened = SettingsStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get(&alice), Settings { name: Some("Alice".into()), gain_percent: 150, muted: false });
        assert!(reopened.get(&bob).muted);
        assert_eq!(reopened.len(), 2);

        // Make the directory unwritable by replacing the file's path with a directory.
        let blocked = tempfile::tempdir().unwrap();
        std::fs::create_dir(blocked.path().join(FILE_NAME)).unwrap();
        let mut store = SettingsStore::open(dir.path()).unwrap();
        store.path = blocked.path().join(FILE_NAME);
        assert!(store.update(&alice, |s| s.gain_percent = 10).is_err());
        assert_eq!(store.get(&alice).gain_percent, 150, "a failed write is not applied");
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        let e = SettingsStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a Viz participants file"), "{e}");
    }
}
