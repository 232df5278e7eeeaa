//! How loud you hear each person, remembered per identity (their key's fingerprint)
//! in the `[volumes]` table of `config.toml`, so a friend you turned down stays down
//! in the next call. Viz edits only that table and keeps the rest of the file as the
//! user wrote it (comments, order). A participant without an identity (the test
//! source) is remembered for this call only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use viz_proto::control::MAX_GAIN_PERCENT;

/// The table's name in `config.toml`.
pub const TABLE: &str = "volumes";

#[derive(Debug, Default, Clone)]
pub struct Volumes {
    /// Fingerprint → percent (100 is not stored).
    percent: BTreeMap<String, u16>,
    /// The config file to write changes to; `None` keeps them in memory.
    file: Option<PathBuf>,
}

impl Volumes {
    /// Volumes read from the config file (already checked by whoever loaded it), saved
    /// back to `file` when they change.
    pub fn new(percent: BTreeMap<String, u16>, file: Option<PathBuf>) -> Self {
        let percent =
            percent.into_iter().filter(|(_, p)| *p != 100).map(|(k, p)| (k, p.min(MAX_GAIN_PERCENT))).collect();
        Self { percent, file }
    }

    /// How loud `key` is heard, in percent.
    pub fn get(&self, key: &str) -> u16 {
        self.percent.get(key).copied().unwrap_or(100)
    }

    /// Every identity with a volume other than 100 %.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u16)> {
        self.percent.iter().map(|(k, p)| (k.as_str(), *p))
    }

    /// Sets `key`'s volume and writes it to the config file, with `name` as a comment
    /// so the file says who the fingerprint is. An error leaves the volume set for
    /// this call.
    pub fn set(&mut self, key: &str, name: &str, percent: u16) -> Result<(), String> {
        let percent = percent.min(MAX_GAIN_PERCENT);
        if percent == 100 {
            self.percent.remove(key);
        } else {
            self.percent.insert(key.to_owned(), percent);
        }
        match &self.file {
            Some(path) if !key.is_empty() => save(path, key, name, percent),
            _ => Ok(()),
        }
    }
}

/// Writes one entry of the `[volumes]` table, keeping everything else in the file.
fn save(path: &std::path::Path, key: &str, name: &str, percent: u16) -> Result<(), String> {
    use toml_edit::{DocumentMut, Item, Table, value};
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    if !doc.contains_key(TABLE) {
        let mut t = Table::new();
        let gap = if doc.is_empty() { "" } else { "\n" };
        t.decor_mut()
            .set_prefix(format!("{gap}# How loud you hear each person (percent), by their key's fingerprint.\n"));
        doc.insert(TABLE, Item::Table(t));
    }
    let table = doc[TABLE].as_table_mut().ok_or_else(|| format!("{}: `{TABLE}` is not a table", path.display()))?;
    if percent == 100 {
        table.remove(key);
    } else {
        table.insert(key, value(i64::from(percent)));
        if let Some(mut k) = table.key_mut(key) {
            let name = viz_proto::control::sanitize_name(name);
            k.leaf_decor_mut().set_prefix(format!("# {name}\n"));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_written_into_the_table_and_the_rest_of_the_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# my settings\nname = \"carol\" # me\n").unwrap();
        let mut v = Volumes::new(BTreeMap::new(), Some(path.clone()));
        v.set("abcd-efgh", "bob", 40).unwrap();
        v.set("ijkl-mnop", "dan\nname = \"x\"", 150).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my settings\nname = \"carol\" # me\n"), "{text}");
        assert!(text.contains("# bob\nabcd-efgh = 40\n"), "{text}");
        assert!(text.contains("# dan name = \"x\"\nijkl-mnop = 150\n"), "a name cannot add a line: {text}");
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(doc["name"].as_str(), Some("carol"));
        // Back to 100 % removes the entry; the test source (no key) is never written.
        v.set("abcd-efgh", "bob", 100).unwrap();
        v.set("", "test source", 10).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("abcd-efgh") && text.contains("ijkl-mnop = 150"), "{text}");
        assert_eq!((v.get("abcd-efgh"), v.get(""), v.get("ijkl-mnop")), (100, 10, 150));
    }

    #[test]
    fn a_broken_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "name = \"unterminated\n").unwrap();
        let mut v = Volumes::new(BTreeMap::new(), Some(path.clone()));
        assert!(v.set("k", "bob", 50).unwrap_err().contains("not valid TOML"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name = \"unterminated\n");
        assert_eq!(v.get("k"), 50, "the volume still applies to this call");
    }
}
