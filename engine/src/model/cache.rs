//! [`ModelCache`]: a [`Backend`] that hands back the same session for a
//! file whose contents (SHA-256, [`Hashed`]) and options are unchanged —
//! what lets a hot reload reload only changed models.

use super::{
    Backend, LoadedModel, Model, ModelError, ModelOptions, ModelTable, model_digest, with_metadata,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A [`Backend`] that remembers what it loaded: asked again for a file whose
/// *contents* (SHA-256) and options are unchanged, it hands back the same
/// session, so a hot reload reloads only the models that really changed.
/// Contents are hashed only when a file's [`FileStamp`] changed (see
/// [`model_digest`]): a rebuild for a parameter edit reads no model file.
/// The graph's metadata for a model ([`Backend::with_metadata`]) is part of
/// its identity: the same session and metadata give the same model back.
///
/// Entries are keyed by file, options and contents, so the session a
/// running graph uses is still found after a failed edit loaded another
/// version of its file. Bounded: [`ModelCache::retain`] drops the entries a
/// graph no longer uses, and at most [`ModelCache::CAPACITY`] are kept (the
/// oldest go first; a running graph keeps its own sessions alive anyway).
///
/// [`FileStamp`]: super::FileStamp
pub struct ModelCache<B> {
    inner: B,
    entries: std::sync::Mutex<HashMap<CacheKey, CachedModel>>,
    /// Insertions so far (orders entries by age).
    inserted: std::sync::atomic::AtomicU64,
    /// Time spent in the inner backend since the last [`ModelCache::take_load_time`].
    load_nanos: std::sync::atomic::AtomicU64,
    /// Model files hashed since the last [`ModelCache::take_hashed`] (bounded).
    hashed: std::sync::Mutex<Vec<Hashed>>,
}

type CacheKey = (PathBuf, ModelOptions, [u8; 32]);

/// Most metadata variants kept per session.
const WRAPPERS: usize = 8;

struct CachedModel {
    age: u64,
    loaded: LoadedModel,
    /// The session with the graphs' metadata, oldest first.
    wrappers: Vec<(BTreeMap<String, String>, Arc<dyn Model>)>,
}

/// One model whose files were read and hashed because their stamps changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The model file (its external data included in `bytes`).
    pub path: PathBuf,
    pub bytes: u64,
    pub took: std::time::Duration,
}

impl<B: Backend> ModelCache<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        ModelCache {
            inner,
            entries: std::sync::Mutex::new(HashMap::new()),
            inserted: std::sync::atomic::AtomicU64::new(0),
            load_nanos: std::sync::atomic::AtomicU64::new(0),
            hashed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Most sessions kept.
    pub const CAPACITY: usize = 32;

    /// Time spent loading models (cache misses) since the last call.
    pub fn take_load_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.load_nanos
                .swap(0, std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The models whose files were hashed since the last call (their
    /// size, mtime or inode had changed, or they were new).
    pub fn take_hashed(&self) -> Vec<Hashed> {
        std::mem::take(&mut *self.hashed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The models hashed since the last [`ModelCache::take_hashed`], kept.
    pub fn peek_hashed(&self) -> Vec<Hashed> {
        self.hashed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Keeps only the sessions `models` (a built graph's table) uses.
    pub fn retain(&self, models: &ModelTable) {
        let used: Vec<*const ()> = models
            .iter()
            .map(|(_, m)| Arc::as_ptr(m).cast::<()>())
            .collect();
        let is_used = |m: &Arc<dyn Model>| used.contains(&Arc::as_ptr(m).cast::<()>());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .retain(|_, c| is_used(&c.loaded.model) || c.wrappers.iter().any(|(_, w)| is_used(w)));
    }

    /// Number of cached sessions.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<B: Backend> Backend for ModelCache<B> {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let identity = model_digest(path)
            .map_err(|e| ModelError::Load(format!("cannot read `{}`: {e}", path.display())))?;
        if let Some((bytes, took)) = identity.hashed {
            let mut hashed = self.hashed.lock().unwrap_or_else(|p| p.into_inner());
            if hashed.len() < Self::CAPACITY {
                hashed.push(Hashed {
                    path: path.to_path_buf(),
                    bytes,
                    took,
                });
            }
        }
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            options.clone(),
            identity.digest,
        );
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = entries.get(&key) {
                return Ok(c.loaded.clone());
            }
        }
        // Loading happens outside the lock: it may take seconds.
        let started = std::time::Instant::now();
        let loaded = self.inner.load(path, options);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        let loaded = loaded?;
        let age = self
            .inserted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while entries.len() >= Self::CAPACITY {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.age)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            CachedModel {
                age,
                loaded: loaded.clone(),
                wrappers: Vec::new(),
            },
        );
        Ok(loaded)
    }

    fn with_metadata(
        &self,
        model: Arc<dyn Model>,
        overrides: BTreeMap<String, String>,
    ) -> Arc<dyn Model> {
        if !crate::model_ports::needs_wrapper(model.signature(), &overrides) {
            return model;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries
            .values_mut()
            .find(|c| Arc::ptr_eq(&c.loaded.model, &model))
        else {
            return with_metadata(model, overrides);
        };
        if let Some((_, w)) = entry.wrappers.iter().find(|(o, _)| *o == overrides) {
            return Arc::clone(w);
        }
        let wrapped = with_metadata(model, overrides.clone());
        if entry.wrappers.len() >= WRAPPERS {
            entry.wrappers.remove(0);
        }
        entry.wrappers.push((overrides, Arc::clone(&wrapped)));
        wrapped
    }
}
