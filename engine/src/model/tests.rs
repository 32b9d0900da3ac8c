//! Unit tests of the model interface, cache and digests.

/// A model exported with external data is the `.onnx` and its `.data`:
/// a retrained `.data` alone changes the digest (and so reloads).
#[test]
fn external_data_is_part_of_a_models_digest() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, b"graph").unwrap();
    let alone = file_digest(&model).unwrap();
    assert_eq!(model_files(&model), std::slice::from_ref(&model));
    let data = dir.path().join("m.onnx.data");
    std::fs::write(&data, b"weights v1").unwrap();
    assert_eq!(model_files(&model), [model.clone(), data.clone()]);
    let v1 = file_digest(&model).unwrap();
    std::fs::write(&data, b"weights v2").unwrap();
    let v2 = file_digest(&model).unwrap();
    assert!(alone != v1 && v1 != v2);
    // Not a model: only the file itself.
    let text = dir.path().join("a.txt");
    std::fs::write(&text, b"W").unwrap();
    std::fs::write(dir.path().join("a.txt.data"), b"x").unwrap();
    assert_eq!(model_files(&text), [text]);
}

use super::digest::{RACY, remembered, store};
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Fake(ModelSignature);

impl Model for Fake {
    fn signature(&self) -> &ModelSignature {
        &self.0
    }
    fn provider(&self) -> Provider {
        Provider::Cpu
    }
    fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        Ok(Vec::new())
    }
}

/// Counts loads; a file starting with `bad` fails to load.
struct Counting(AtomicUsize);

impl Backend for Counting {
    fn load(&self, path: &Path, _: &ModelOptions) -> Result<LoadedModel, ModelError> {
        if std::fs::read(path).is_ok_and(|b| b.starts_with(b"bad")) {
            return Err(ModelError::Load("truncated".into()));
        }
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(LoadedModel {
            model: Arc::new(Fake(ModelSignature {
                inputs: Vec::new(),
                outputs: Vec::new(),
                metadata: BTreeMap::new(),
            })),
            warnings: Vec::new(),
        })
    }
}

#[test]
fn the_cache_reloads_only_changed_contents_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let cache = ModelCache::new(Counting(AtomicUsize::new(0)));
    let opts = ModelOptions::default();
    let load = || cache.load(&path, &opts).map(|l| l.model);
    let loads = || cache.inner().0.load(Ordering::SeqCst);
    std::fs::write(&path, "v1").unwrap();
    let a = load().unwrap();
    std::fs::write(&path, "v1").unwrap(); // rewritten, same contents
    assert!(Arc::ptr_eq(&a, &load().unwrap()));
    assert_eq!(loads(), 1);
    std::fs::write(&path, "bad").unwrap(); // a half-written file: an error
    assert!(load().is_err());
    std::fs::write(&path, "v2").unwrap();
    let b = load().unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    std::fs::write(&path, "v1").unwrap(); // back: the running session again
    assert!(Arc::ptr_eq(&a, &load().unwrap()));
    assert_eq!(loads(), 2);
    let mut table = ModelTable::new();
    table.insert("m", Arc::clone(&a));
    cache.retain(&table);
    assert_eq!(cache.len(), 1);
    for i in 0..100 {
        std::fs::write(&path, format!("v{i}")).unwrap();
        load().unwrap();
    }
    assert!(cache.len() <= ModelCache::<Counting>::CAPACITY);
}

/// A minimal ONNX protobuf whose one tensor is stored in `location`.
fn model_naming(location: &str) -> Vec<u8> {
    fn field(number: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(number << 3 | 2);
        out.push(body.len() as u8);
        out.extend_from_slice(body);
    }
    let mut entry = Vec::new();
    field(1, b"location", &mut entry);
    field(2, location.as_bytes(), &mut entry);
    let mut tensor = Vec::new();
    field(8, b"w", &mut tensor);
    field(13, &entry, &mut tensor);
    tensor.extend_from_slice(&[14 << 3, 1]); // data_location = EXTERNAL
    let mut graph = Vec::new();
    field(5, &tensor, &mut graph);
    let mut model = Vec::new();
    field(7, &graph, &mut model);
    model
}

/// Files older than the racy window, so their stamps are trusted.
fn settle() {
    std::thread::sleep(RACY + std::time::Duration::from_millis(50));
}

/// The files a model reads are named by the model (`weights.bin`), and
/// their contents are hashed only when a stamp changed: a second
/// digest of unchanged files reads nothing; new bytes, or a touch, are
/// hashed again (the touch finds the same digest).
#[test]
fn a_model_is_hashed_only_when_its_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    let data = dir.path().join("weights.bin");
    std::fs::write(&model, model_naming("weights.bin")).unwrap();
    std::fs::write(&data, b"weights v1").unwrap();
    settle();
    assert_eq!(model_files(&model), [model.clone(), data.clone()]);
    let first = model_digest(&model).unwrap();
    assert!(first.hashed.is_some());
    let again = model_digest(&model).unwrap();
    assert_eq!((again.digest, again.hashed), (first.digest, None));
    std::fs::write(&data, b"weights v2").unwrap(); // same size, in place
    settle();
    let changed = model_digest(&model).unwrap();
    assert!(changed.hashed.is_some() && changed.digest != first.digest);
    let f = std::fs::File::options().append(true).open(&data).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    settle();
    let touched = model_digest(&model).unwrap();
    assert!(touched.hashed.is_some());
    assert_eq!(touched.digest, changed.digest);
    assert_eq!(model_digest(&model).unwrap().hashed, None);
    // A missing data file is an error naming it.
    std::fs::remove_file(&data).unwrap();
    let e = model_digest(&model).unwrap_err().to_string();
    assert!(e.contains("weights.bin"), "{e}");
}

/// The graph's metadata for a model is part of its identity: the same
/// session and metadata give the same model on every build (so a
/// rebuild is no reload), other metadata another wrapper around the
/// same session, and a graph that holds only the wrapper keeps the
/// session cached.
#[test]
fn graph_metadata_is_part_of_a_models_identity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, "v1").unwrap();
    let cache = ModelCache::new(Counting(AtomicUsize::new(0)));
    let opts = ModelOptions::default();
    let meta = |role: &str| BTreeMap::from([("wgraph.role".to_string(), role.to_string())]);
    let build = |role: &str| {
        let inner = cache.load(&path, &opts).unwrap().model;
        cache.with_metadata(inner, meta(role))
    };
    let a = build("denoiser");
    assert_eq!(a.signature().meta("wgraph.role"), Some("denoiser"));
    let mut table = ModelTable::new();
    table.insert("m", Arc::clone(&a));
    cache.retain(&table);
    assert_eq!(cache.len(), 1, "the session behind the graph's model stays");
    assert!(Arc::ptr_eq(&a, &build("denoiser")));
    let b = build("encoder");
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(cache.inner().0.load(Ordering::SeqCst), 1);
}

/// Digests kept in the store survive the process's memory: a model
/// whose files kept their stamps is not hashed at the next start.
#[test]
fn digests_are_kept_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    remember_digests_in(
        std::env::temp_dir().join(format!("wgraph-test-digests-{}.json", std::process::id())),
    );
    let model = dir.path().join("kept.onnx");
    std::fs::write(&model, model_naming("kept.bin")).unwrap();
    std::fs::write(dir.path().join("kept.bin"), b"weights").unwrap();
    settle();
    let first = model_digest(&model).unwrap();
    assert!(first.hashed.is_some());
    // Forgotten in memory, as a new process starts.
    remembered().remove(&std::path::absolute(&model).unwrap());
    let next = model_digest(&model).unwrap();
    assert_eq!((next.digest, next.hashed), (first.digest, None));
    if let Some(f) = store::FILE.get() {
        let _ = std::fs::remove_file(f);
    }
}
