//! Files in the user's config directory: the static identity key (mode 0600) and the
//! known-hosts list (trust on first use, like SSH's `known_hosts`).
//!
//! The directory is `$VIZ_CONFIG_DIR` if set, else the platform's config dir
//! (`~/.config/viz` on Linux). Every write goes to a temporary file that is synced and
//! then renamed over the old one, so a crash never leaves half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use viz_proto::{Keypair, PublicKey};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot find a configuration directory; set VIZ_CONFIG_DIR")]
    NoConfigDir,
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_owned(), error }
}

pub fn config_dir() -> Result<PathBuf, StoreError> {
    if let Some(dir) = std::env::var_os("VIZ_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "viz").map(|d| d.config_dir().to_owned()).ok_or(StoreError::NoConfigDir)
}

pub fn default_identity_path() -> Result<PathBuf, StoreError> {
    Ok(config_dir()?.join("identity"))
}

pub fn default_known_hosts_path() -> Result<PathBuf, StoreError> {
    Ok(config_dir()?.join("known_hosts"))
}

/// Writes `contents` to `path` atomically with the given Unix mode.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp =
        dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("viz"), std::process::id()));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
}

/// Loads the identity at `path`, creating it (mode 0600) on first run. Returns the key
/// and whether it was just created.
pub fn load_or_create_identity(path: &Path) -> Result<(Keypair, bool), StoreError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(path = %path.display(), "identity file is readable by other users; run: chmod 600 {}", path.display());
                }
            }
            let key = Keypair::from_file_contents(&text)
                .map_err(|e| StoreError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate()
                .map_err(|e| StoreError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
            write_atomic(path, key.to_file_contents().as_bytes(), 0o600)?;
            Ok((key, true))
        }
        Err(e) => Err(StoreError::Io { path: path.to_owned(), error: e }),
    }
}

/// `host:port public-key-hex` lines; `#` comments and blank lines are kept as they are.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    lines: Vec<String>,
}

impl KnownHosts {
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StoreError::Io { path: path.to_owned(), error: e }),
        };
        Ok(Self::parse(path, &text))
    }

    pub fn parse(path: &Path, text: &str) -> Self {
        Self { path: path.to_owned(), lines: text.lines().map(str::to_owned).collect() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lookup(&self, host: &str) -> Option<PublicKey> {
        self.lines.iter().find_map(|line| {
            let mut parts = line.split_whitespace();
            let (h, k) = (parts.next()?, parts.next()?);
            (!h.starts_with('#') && h == host).then(|| PublicKey::from_hex(k)).flatten()
        })
    }

    /// Records `key` for `host` (replacing an older entry) and saves the file.
    pub fn remember(&mut self, host: &str, key: PublicKey) -> Result<(), StoreError> {
        self.lines.retain(|line| line.split_whitespace().next() != Some(host));
        self.lines.push(format!("{host} {} {}", key.to_hex(), key.fingerprint()));
        let mut text = self.lines.join("\n");
        text.push('\n');
        write_atomic(&self.path, text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity");
        let (a, created) = load_or_create_identity(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let (b, created) = load_or_create_identity(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        fs::write(&path, "garbage").unwrap();
        let err = load_or_create_identity(&path).unwrap_err().to_string();
        assert!(err.contains("not a viz identity file"), "{err}");
    }

    #[test]
    fn known_hosts_remember_lookup_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let k1 = Keypair::from_private([1; 32]).public();
        let k2 = Keypair::from_private([2; 32]).public();
        let mut kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.lookup("a:1"), None);
        kh.remember("a:1", k1).unwrap();
        kh.remember("b:2", k2).unwrap();
        let kh2 = KnownHosts::load(&path).unwrap();
        assert_eq!(kh2.lookup("a:1"), Some(k1));
        assert_eq!(kh2.lookup("b:2"), Some(k2));
        let mut kh3 = kh2.clone();
        kh3.remember("a:1", k2).unwrap();
        assert_eq!(KnownHosts::load(&path).unwrap().lookup("a:1"), Some(k2));
        // Garbage lines are ignored, not fatal.
        let junk = KnownHosts::parse(&path, "# comment\n\nnot-a-line\na:1 zz\nc:3\n");
        assert_eq!(junk.lookup("a:1"), None);
        assert_eq!(junk.lookup("c:3"), None);
    }
}
