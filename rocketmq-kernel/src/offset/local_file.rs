//! [`LocalFileOffsetStore`]: offsets in a local JSON file (broadcasting).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rocketmq_model::MessageQueue;
use rocketmq_model::body::nonstandard_json::{
    JavaJsonWriter, parse_lenient, parse_message_queue_key,
};
use serde_json::Value;

use super::table::OffsetTable;
use super::{OffsetStore, ReadOffsetType};
use crate::error::{KernelError, Result};

/// The body name in JSON errors (Java's class).
const WRAPPER: &str = "OffsetSerializeWrapper";

/// The offsets of a broadcasting consumer, kept by this client in
/// `<base>/<clientId>/<group>/offsets.json` (Java's default base is
/// `~/.rocketmq_offsets`, see [`LocalFileOffsetStore::default_base_dir`]).
///
/// The file is Java's `OffsetSerializeWrapper`,
/// `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:5}}`, so a
/// Java client can take it over and the other way round. Each write goes to
/// `offsets.json.tmp`, is flushed to disk, and is renamed over the file after
/// the previous good file became `offsets.json.bak`: a crash at any point
/// leaves a complete file or a complete backup. Loading falls back to the
/// backup when the file is missing, empty or corrupt.
///
/// Queues that leave memory (removed) keep their last persisted offset in the
/// file, as in Java.
#[derive(Debug)]
pub struct LocalFileOffsetStore {
    path: PathBuf,
    table: OffsetTable,
    /// What the file holds; also serialises file access (held across the
    /// blocking write, intended).
    file: Arc<tokio::sync::Mutex<FileState>>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The offsets last written (or loaded).
    persisted: BTreeMap<MessageQueue, i64>,
    /// Whether the main file is known to be good, so it may become the
    /// backup; a corrupt one is overwritten without replacing the backup.
    main_is_good: bool,
}

impl LocalFileOffsetStore {
    /// The store of `group` for `client_id` under `base_dir`. The path is
    /// joined as Java joins it, by string: a client id or group starting
    /// with a separator stays under `base_dir`.
    pub fn new(base_dir: impl AsRef<Path>, client_id: &str, group: &str) -> Self {
        let mut path = base_dir.as_ref().as_os_str().to_owned();
        for part in [client_id, group, "offsets.json"] {
            path.push(std::path::MAIN_SEPARATOR_STR);
            path.push(part);
        }
        Self::at_path(PathBuf::from(path))
    }

    /// A store kept in the file `path` (its backup and temporary files sit
    /// beside it).
    pub fn at_path(path: impl Into<PathBuf>) -> Self {
        LocalFileOffsetStore {
            path: path.into(),
            table: OffsetTable::default(),
            file: Arc::new(tokio::sync::Mutex::new(FileState::default())),
        }
    }

    /// Java's default base directory, `$HOME/.rocketmq_offsets` (`None`
    /// when `HOME` is not set).
    pub fn default_base_dir() -> Option<PathBuf> {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rocketmq_offsets"))
    }

    /// The file the offsets are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file (or its backup) off the runtime's threads.
    async fn read_file(&self) -> Result<LoadedFile> {
        let path = self.path.clone();
        run_blocking("reading the offset file", move || read_offsets(&path)).await
    }

    /// Merges the in-memory offsets of `only` (every queue when `None`) into
    /// what the file holds and writes it atomically. The offsets are read
    /// under the file lock, so a write cannot replace a newer one with an
    /// older snapshot.
    ///
    /// The file lock goes with the write to the blocking pool: a caller
    /// that gives up on a persist cannot let the next one start writing the
    /// same temporary file while the first is still at it.
    async fn write_merged(&self, only: Option<&MessageQueue>) -> Result<()> {
        let file = Arc::clone(&self.file).lock_owned().await;
        let offsets = match only {
            Some(mq) => match self.table.get(mq) {
                Some(offset) => BTreeMap::from([(mq.clone(), offset)]),
                None => return Ok(()),
            },
            None => self.table.snapshot(),
        };
        let mut merged = file.persisted.clone();
        merged.extend(offsets);
        let bytes = encode_offsets(&merged)?;
        let path = self.path.clone();
        let backup_main = file.main_is_good;
        run_blocking("writing the offset file", move || {
            let mut file = file;
            write_atomically(&path, &bytes, backup_main)?;
            file.persisted = merged;
            file.main_is_good = true;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl OffsetStore for LocalFileOffsetStore {
    async fn load(&self) -> Result<()> {
        let mut file = self.file.lock().await;
        let loaded = self.read_file().await?;
        self.table.load(loaded.offsets.clone());
        file.persisted = loaded.offsets;
        file.main_is_good = loaded.main_is_good;
        Ok(())
    }

    fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool {
        self.table.update(mq, offset, increase_only)
    }

    async fn read(&self, mq: &MessageQueue, from: ReadOffsetType) -> Result<Option<i64>> {
        if from != ReadOffsetType::Store {
            let in_memory = self.table.get(mq);
            if in_memory.is_some() || from == ReadOffsetType::Memory {
                return Ok(in_memory);
            }
        }
        let mark = self.table.mark();
        let _file = self.file.lock().await;
        let stored = self.read_file().await?.offsets.get(mq).copied();
        self.table.restore(mq, stored, mark);
        Ok(stored)
    }

    async fn persist(&self, mq: &MessageQueue) -> Result<()> {
        self.write_merged(Some(mq)).await
    }

    async fn persist_all(&self) -> Result<()> {
        self.write_merged(None).await
    }

    fn remove(&self, mq: &MessageQueue) {
        self.table.remove(mq);
    }

    fn force(&self, mq: &MessageQueue, offset: i64) -> bool {
        self.table.force(mq, offset)
    }

    fn snapshot(&self) -> BTreeMap<MessageQueue, i64> {
        self.table.snapshot()
    }
}

/// The offsets read from the file system.
#[derive(Debug, Default)]
struct LoadedFile {
    offsets: BTreeMap<MessageQueue, i64>,
    /// Whether they came from the main file (not the backup).
    main_is_good: bool,
}

fn backup_path(path: &Path) -> PathBuf {
    sibling(path, ".bak")
}

fn temp_path(path: &Path) -> PathBuf {
    sibling(path, ".tmp")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the main file, or the backup when the main file is missing, empty
/// or corrupt. Neither existing is an empty table; a corrupt backup (with no
/// good main file) is an error.
fn read_offsets(path: &Path) -> Result<LoadedFile> {
    if let Some(bytes) = read_if_present(path)? {
        match decode_offsets(&bytes) {
            Ok(offsets) => {
                return Ok(LoadedFile {
                    offsets,
                    main_is_good: true,
                });
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "offset file is corrupt, reading its backup");
            }
        }
    }
    let backup = backup_path(path);
    let offsets = match read_if_present(&backup)? {
        Some(bytes) => decode_offsets(&bytes)?,
        None => BTreeMap::new(),
    };
    Ok(LoadedFile {
        offsets,
        main_is_good: false,
    })
}

/// The file's bytes; `None` when it does not exist or is empty.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(format!("reading {}", path.display()), err)),
    }
}

/// Decodes Java's `OffsetSerializeWrapper` (compact or pretty, raw object or
/// quoted keys).
fn decode_offsets(bytes: &[u8]) -> Result<BTreeMap<MessageQueue, i64>> {
    let value = parse_lenient(WRAPPER, bytes)?;
    let Value::Object(wrapper) = value else {
        return Err(corrupt("not a JSON object"));
    };
    let table = match wrapper.get("offsetTable") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(table)) => table,
        Some(_) => return Err(corrupt("offsetTable is not an object")),
    };
    table
        .iter()
        .map(|(key, offset)| {
            let mq = parse_message_queue_key(key)
                .ok_or_else(|| corrupt(&format!("key {key:?} is not a MessageQueue")))?;
            let offset = offset
                .as_i64()
                .ok_or_else(|| corrupt(&format!("offset of {mq} is not an integer")))?;
            Ok((mq, offset))
        })
        .collect()
}

fn corrupt(reason: &str) -> KernelError {
    KernelError::Model(rocketmq_model::ModelError::malformed(
        WRAPPER,
        reason.to_string(),
    ))
}

/// Encodes the offsets in the shape of Java's `OffsetSerializeWrapper`,
/// compact (Java writes it pretty, `toJson(true)`; each side reads both).
fn encode_offsets(offsets: &BTreeMap<MessageQueue, i64>) -> Result<Vec<u8>> {
    let mut writer = JavaJsonWriter::new(WRAPPER);
    writer.mq_map_field("offsetTable", offsets)?;
    Ok(writer.finish())
}

/// Writes `bytes` to a temporary file, flushes it, keeps the current file as
/// the backup (when it is good) and renames the temporary file over it.
fn write_atomically(path: &Path, bytes: &[u8], backup_main: bool) -> Result<()> {
    let what = |step: &str| format!("{step} {}", path.display());
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_error(what("creating the directory of"), e))?;
    let temp = temp_path(path);
    let mut file =
        fs::File::create(&temp).map_err(|e| io_error(what("creating a temp file for"), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(what("writing a temp file for"), e))?;
    drop(file);
    if backup_main && path.exists() {
        fs::rename(path, backup_path(path)).map_err(|e| io_error(what("backing up"), e))?;
    }
    fs::rename(&temp, path).map_err(|e| io_error(what("replacing"), e))?;
    sync_dir(dir).map_err(|e| io_error(what("syncing the directory of"), e))
}

/// Flushes a directory's entries (the renames) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn io_error(what: String, source: io::Error) -> KernelError {
    KernelError::Io { what, source }
}

/// Runs blocking file work on tokio's blocking pool.
async fn run_blocking<T, F>(what: &str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| io_error(what.to_string(), io::Error::other(join.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn path_stays_under_the_base_directory() {
        let store = LocalFileOffsetStore::new("/base", "/abs@1#0", "G");
        assert!(store.path().starts_with("/base"));
        assert_eq!(store.path(), Path::new("/base/abs@1#0/G/offsets.json"));
    }

    #[test]
    fn reads_javas_pretty_output() {
        let java = b"{\n\t\"offsetTable\":{{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":3,\n\t\t\t\"topic\":\"T\"\n\t\t}:1024,{\n\t\t\t\"brokerName\":\"broker-b\",\n\t\t\t\"queueId\":0,\n\t\t\t\"topic\":\"T\"\n\t\t}:7\n\t}\n}";
        let offsets = decode_offsets(java).unwrap();
        assert_eq!(offsets[&MessageQueue::new("T", "broker-a", 3)], 1024);
        assert_eq!(offsets[&MessageQueue::new("T", "broker-b", 0)], 7);
    }

    #[test]
    fn writes_javas_shape_and_reads_it_back() {
        let offsets = BTreeMap::from([(MessageQueue::new("T", "b", 1), 5_i64)]);
        let bytes = encode_offsets(&offsets).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:5}}"#
        );
        assert_eq!(decode_offsets(&bytes).unwrap(), offsets);
        assert!(decode_offsets(b"{}").unwrap().is_empty());
    }

    #[test]
    fn rejects_corrupt_content() {
        for bad in [
            &b"{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T\"}:5"[..],
            b"{\"offsetTable\":[]}",
            b"{\"offsetTable\":{\"x\":1}}",
            b"{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T\"}:\"5\"}}",
            b"[1]",
        ] {
            assert!(
                decode_offsets(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
