//! [`OrtBackend`], the engine [`Backend`] that loads `.onnx` files into
//! [`OrtModel`]s, and [`Notices`], where it says what takes long.

use crate::OrtModel;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use wgraph_engine::model::{Backend, LoadedModel, ModelError, ModelOptions};

/// Loads ONNX models with ONNX Runtime.
///
/// Stateless: the runtime itself is process-wide (see
/// [`runtime()`](crate::runtime())), and each loaded model owns its
/// session.
#[derive(Clone, Default)]
pub struct OrtBackend {
    notices: Option<Notices>,
}

impl fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtBackend")
            .field("notices", &self.notices.is_some())
            .finish()
    }
}

impl OrtBackend {
    /// A backend. Creating one is free; the runtime is found on the first
    /// [`load`](Backend::load).
    pub fn new() -> Self {
        OrtBackend::default()
    }

    /// Tells `notices` about work that takes long before it starts (a
    /// TensorRT engine build at [`Model::prepare`]), so a user is not left
    /// looking at a silent terminal for minutes.
    ///
    /// [`Model::prepare`]: wgraph_engine::model::Model::prepare
    pub fn with_notices(mut self, notices: Notices) -> Self {
        self.notices = Some(notices);
        self
    }
}

/// Where a backend says what takes long (an engine build) before it starts.
pub type Notices = Arc<dyn Fn(&str) + Send + Sync>;

impl Backend for OrtBackend {
    fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
        let mut model = OrtModel::load(path, options)?;
        model.0.notices = self.notices.clone();
        let warnings = model.1;
        Ok(LoadedModel {
            model: Arc::new(model.0),
            warnings,
        })
    }
}
