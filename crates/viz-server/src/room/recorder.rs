//! The recorder thread: Ogg Opus files of the room mix and of each participant
//! (`viz serve --record DIR [--record-each]`).
//!
//! The room hands it Opus packets exactly as its listeners get them (the mix, or a
//! participant's own packets through a mixer tap), so recording costs no decoding or
//! encoding. Files are written on this thread, never on the room's network task, so a
//! slow disk delays nothing but the recording; if the queue fills, packets are dropped
//! and counted. Each file's pages go straight to the file as they fill
//! ([`viz_audio::ogg_opus`]), so a killed server leaves files that play up to the last
//! 200 ms; a clean shutdown closes every stream properly.
//!
//! A file that cannot be written (the disk is full, the directory went away) is said
//! at error level and on the [`StatusBoard`] that `/api/recordings` and the admin page
//! show; every [`RETRY`] the recorder tries again with a new file (`-2`, `-3`...), so a
//! recording resumes by itself once there is space.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use viz_audio::ogg_opus::OggOpusWriter;

/// Packets queued for the disk at most (about 40 s of one stream).
const QUEUE: usize = 2048;
/// How often a recording that could not be written tries a new file.
pub const RETRY: Duration = Duration::from_secs(5);

/// How one recording is doing, as the recorder thread last saw it.
#[derive(Debug, Clone, Default)]
pub struct FileStatus {
    /// The file written now (or last tried).
    pub path: PathBuf,
    /// Packets on disk, over all its files.
    pub written: u64,
    /// Packets lost because no file could be written.
    pub lost: u64,
    /// Why it is not being written, while it is not.
    pub error: Option<String>,
}

/// Every open recording's [`FileStatus`], by file id.
pub type StatusBoard = Arc<Mutex<HashMap<u64, FileStatus>>>;

fn update(board: &StatusBoard, id: u64, f: impl FnOnce(&mut FileStatus)) {
    let mut b = board.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(b.entry(id).or_default());
}

#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub dir: PathBuf,
    /// A file per participant as well as the mix.
    pub each: bool,
}

pub(crate) enum RecordMsg {
    Open { id: u64, path: PathBuf, tags: Vec<(String, String)> },
    Packet { id: u64, timestamp: u32, data: Vec<u8> },
    Close { id: u64 },
}

pub(crate) struct Recorder {
    tx: Sender<RecordMsg>,
    thread: Option<JoinHandle<()>>,
    pub dropped: Arc<AtomicU64>,
    pub status: StatusBoard,
}

impl Recorder {
    /// Creates the directory if needed, checks that files can be written there, and
    /// starts the thread.
    pub(crate) fn spawn(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the recording directory {}: {e}", dir.display()))?;
        check_writable(dir).map_err(|e| format!("cannot write to the recording directory {}: {e}", dir.display()))?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let status = StatusBoard::default();
        let board = status.clone();
        let thread = std::thread::Builder::new()
            .name("viz-recorder".into())
            .spawn(move || run(rx, board))
            .map_err(|e| format!("cannot start the recorder thread: {e}"))?;
        Ok(Self { tx, thread: Some(thread), dropped: Arc::default(), status })
    }

    /// Queues a message. Packets are dropped (counted) when the disk falls behind;
    /// opening and closing files wait for room in the queue.
    pub(crate) fn send(&self, msg: RecordMsg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(RecordMsg::Packet { .. })) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(msg)) => {
                let _ = self.tx.send(msg);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Closes every file properly and waits for the thread.
    pub(crate) fn stop(mut self) {
        let (tx, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Open {
    path: PathBuf,
    writer: OggOpusWriter<File>,
}

/// One recording: its file while it can be written, and what it needs to start another.
struct Stream {
    /// The name asked for; a new file after a failure gets a suffix.
    template: PathBuf,
    tags: Vec<(String, String)>,
    file: Option<Open>,
    /// When a file last failed (to be created or written).
    failed_at: Option<Instant>,
}

impl Stream {
    /// Creates a file for the stream and says how that went.
    fn start_file(&mut self, id: u64, board: &StatusBoard) {
        match create(&self.template, &self.tags) {
            Ok((path, writer)) => {
                if self.failed_at.take().is_some() {
                    tracing::warn!("recording resumed in {}", path.display());
                } else {
                    tracing::info!("recording to {}", path.display());
                }
                update(board, id, |s| {
                    s.path = path.clone();
                    s.error = None;
                });
                self.file = Some(Open { path, writer });
            }
            Err(e) => {
                let text = format!("cannot record to {}: {e}", self.template.display());
                tracing::error!("{text}; trying again every {} s", RETRY.as_secs());
                self.failed(id, board, text);
            }
        }
    }

    fn failed(&mut self, id: u64, board: &StatusBoard, text: String) {
        self.failed_at = Some(Instant::now());
        self.file = None;
        let template = self.template.clone();
        update(board, id, |s| {
            if s.path.as_os_str().is_empty() {
                s.path = template;
            }
            s.error = Some(text);
        });
    }

    fn write(&mut self, id: u64, board: &StatusBoard, timestamp: u32, data: &[u8]) {
        if self.file.is_none() && self.failed_at.is_some_and(|t| t.elapsed() >= RETRY) {
            self.start_file(id, board);
        }
        let Some(f) = self.file.as_mut() else {
            update(board, id, |s| s.lost += 1);
            return;
        };
        match f.writer.write(timestamp, data) {
            Ok(true) => update(board, id, |s| s.written += 1),
            Ok(false) => {}                                     // late or repeated: already covered
            Err(viz_audio::ogg_opus::OggError::Packet(_)) => {} // not Opus: skipped
            Err(e) => {
                let text = format!("recording {} stopped: {e}", f.path.display());
                tracing::error!("{text}; trying a new file every {} s", RETRY.as_secs());
                update(board, id, |s| s.lost += 1);
                self.failed(id, board, text);
            }
        }
    }
}

fn run(rx: Receiver<RecordMsg>, board: StatusBoard) {
    let mut streams: HashMap<u64, Stream> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            RecordMsg::Open { id, path, tags } => {
                let mut stream = Stream { template: path, tags, file: None, failed_at: None };
                stream.start_file(id, &board);
                streams.insert(id, stream);
            }
            RecordMsg::Packet { id, timestamp, data } => {
                if let Some(stream) = streams.get_mut(&id) {
                    stream.write(id, &board, timestamp, &data);
                }
            }
            RecordMsg::Close { id } => {
                if let Some(f) = streams.remove(&id).and_then(|s| s.file) {
                    finish(f);
                }
                board.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id);
            }
        }
    }
    for (_, stream) in streams.drain() {
        if let Some(f) = stream.file {
            finish(f);
        }
    }
}

/// Writes and removes a small file, so that a directory we cannot write to is found at
/// start rather than when the first participant joins.
fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".viz-write-check-{}", std::process::id()));
    let mut f = File::options().write(true).create_new(true).open(&probe)?;
    let written = f.write_all(b"viz").and_then(|()| f.sync_all());
    drop(f);
    let removed = std::fs::remove_file(&probe);
    written.and(removed)
}

fn finish(f: Open) {
    let seconds = f.writer.samples() as f64 / 48_000.0;
    match f.writer.finish() {
        Ok(_) => tracing::info!("recording {} closed ({seconds:.1} s)", f.path.display()),
        Err(e) => tracing::error!("recording {} could not be closed: {e}", f.path.display()),
    }
}

/// Creates the file (never over an existing one: a `-2`, `-3`... suffix instead) and
/// writes the Ogg Opus headers.
fn create(path: &Path, tags: &[(String, String)]) -> Result<(PathBuf, OggOpusWriter<File>), String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("recording").to_owned();
    let mut candidate = path.to_owned();
    for n in 2..1000 {
        match File::options().write(true).create_new(true).open(&candidate) {
            Ok(file) => {
                let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let writer = OggOpusWriter::new(file, rand::random(), &tags).map_err(|e| e.to_string())?;
                return Ok((candidate, writer));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                candidate = path.with_file_name(format!("{stem}-{n}.opus"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("too many files with that name".into())
}

/// A file name part from a room or participant name: letters, digits, `.`, `_`, `-`.
pub(crate) fn file_part(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(40)
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '.' || c == '_').to_owned();
    if cleaned.is_empty() { "unnamed".into() } else { cleaned }
}

/// UTC now as `20261203-083015`, for file names; and as RFC 3339 for the tags.
pub(crate) fn timestamps() -> (String, String) {
    let t = time::OffsetDateTime::now_utc();
    let (y, mo, d, h, mi, s) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    (format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}"), format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parts_are_safe() {
        assert_eq!(file_part("Ann B."), "Ann_B");
        assert_eq!(file_part("../../etc/passwd"), "etc_passwd");
        assert_eq!(file_part("日本"), "日本");
        assert_eq!(file_part("///"), "unnamed");
        assert_eq!(file_part(&"x".repeat(100)).len(), 40);
    }

    #[test]
    fn the_thread_writes_closes_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::spawn(&dir.path().join("rec")).unwrap();
        let path = dir.path().join("rec/room-mix.opus");
        for id in [1, 2] {
            rec.send(RecordMsg::Open { id, path: path.clone(), tags: vec![("ROOM".into(), "r".into())] });
        }
        for i in 0..30u32 {
            rec.send(RecordMsg::Packet { id: 1, timestamp: i * 960, data: vec![31 << 3] });
        }
        // Not Opus: skipped, the file goes on.
        rec.send(RecordMsg::Packet { id: 1, timestamp: 30 * 960, data: vec![] });
        rec.send(RecordMsg::Close { id: 1 });
        rec.stop();
        let first = std::fs::read(&path).unwrap();
        let second = std::fs::read(dir.path().join("rec/room-mix-2.opus")).unwrap();
        assert!(first.len() > second.len());
        assert!(first.starts_with(b"OggS") && second.starts_with(b"OggS"));
        // Both end with an end-of-stream page (header type flag 0x04).
        for bytes in [&first, &second] {
            let last_page = bytes.windows(4).rposition(|w| w == b"OggS").unwrap();
            assert_eq!(bytes[last_page + 5] & 0x04, 0x04);
        }
    }
}
