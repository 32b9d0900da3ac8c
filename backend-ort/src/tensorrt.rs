//! TensorRT provider options: caches, precision, shape profiles.
//!
//! TensorRT compiles a model into an engine for the shapes it will see;
//! the first build takes minutes. wgraph keeps every engine and the
//! tactic timing cache in its cache folder (`<cache>/tensorrt`, or the
//! model's `engine_cache`), so a second start loads them in seconds, and it
//! builds at load time — [`Model::prepare`](wgraph_engine::model::Model::prepare)
//! with the shapes type inference found — never inside a tick. A model with
//! symbolic dimensions gets an explicit [`Profile`] covering those shapes,
//! so TensorRT never rebuilds when a tick's shapes arrive.
//!
//! [`options`] is a pure function from wgraph's settings to ONNX Runtime's
//! option names, so what is asked of TensorRT is tested without a GPU.

use std::path::{Path, PathBuf};
use wgraph_engine::model::ModelOptions;

/// Input shapes a TensorRT engine is built for: per input, the smallest,
/// the usual and the largest shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// One range per input, in signature order.
    pub inputs: Vec<ProfileInput>,
}

/// One input's shape range in a [`Profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInput {
    /// The input's name.
    pub name: String,
    /// The smallest shape.
    pub min: Vec<usize>,
    /// The shape TensorRT tunes for.
    pub opt: Vec<usize>,
    /// The largest shape.
    pub max: Vec<usize>,
}

impl ProfileInput {
    fn exact(name: &str, shape: &[usize]) -> ProfileInput {
        ProfileInput {
            name: name.to_string(),
            min: shape.to_vec(),
            opt: shape.to_vec(),
            max: shape.to_vec(),
        }
    }
}

impl Profile {
    /// A profile holding exactly `shapes` (inputs in signature order).
    pub fn exact(names: &[String], shapes: &[Vec<usize>]) -> Profile {
        Profile {
            inputs: names
                .iter()
                .zip(shapes)
                .map(|(n, s)| ProfileInput::exact(n, s))
                .collect(),
        }
    }

    /// This profile widened to take `shapes` too (the usual shape becomes
    /// the newest one). Shapes of another rank replace the old range.
    pub fn widened(&self, shapes: &[Vec<usize>]) -> Profile {
        Profile {
            inputs: self
                .inputs
                .iter()
                .zip(shapes)
                .map(|(input, s)| {
                    if input.min.len() != s.len() {
                        return ProfileInput::exact(&input.name, s);
                    }
                    ProfileInput {
                        name: input.name.clone(),
                        min: input.min.iter().zip(s).map(|(a, b)| *a.min(b)).collect(),
                        opt: s.clone(),
                        max: input.max.iter().zip(s).map(|(a, b)| *a.max(b)).collect(),
                    }
                })
                .collect(),
        }
    }

    /// True when every input shape in `shapes` lies within the profile.
    pub fn covers(&self, shapes: &[Vec<usize>]) -> bool {
        self.inputs.len() == shapes.len()
            && self.inputs.iter().zip(shapes).all(|(input, s)| {
                input.min.len() == s.len()
                    && s.iter()
                        .zip(input.min.iter().zip(&input.max))
                        .all(|(d, (lo, hi))| lo <= d && d <= hi)
            })
    }

    /// ONNX Runtime's form: `name:1x16x8x8,other:1x4`.
    fn format(&self, pick: impl Fn(&ProfileInput) -> &Vec<usize>) -> String {
        self.inputs
            .iter()
            .map(|entry| {
                let dims: Vec<String> = pick(entry).iter().map(usize::to_string).collect();
                format!("{}:{}", entry.name, dims.join("x"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The engine and timing cache folder: the model's `engine_cache`, else
/// `<wgraph cache>/tensorrt`.
pub fn cache_dir(options: &ModelOptions) -> Option<PathBuf> {
    options
        .engine_cache
        .clone()
        .or_else(|| crate::runtime::cache_base().map(|b| b.join("tensorrt")))
}

/// ONNX Runtime's TensorRT options for these settings (device id is set
/// separately).
pub fn options(
    options: &ModelOptions,
    cache: Option<&Path>,
    profile: Option<&Profile>,
) -> Vec<(&'static str, String)> {
    let mut out = vec![("trt_fp16_enable", options.fp16.to_string())];
    if let Some(dir) = cache {
        let dir = dir.display().to_string();
        out.extend([
            ("trt_engine_cache_enable", "true".to_string()),
            ("trt_engine_cache_path", dir.clone()),
            ("trt_timing_cache_enable", "true".to_string()),
            ("trt_timing_cache_path", dir),
        ]);
    }
    if options.cuda_graph {
        out.push(("trt_cuda_graph_enable", "true".to_string()));
    }
    if let Some(p) = profile {
        out.extend([
            ("trt_profile_min_shapes", p.format(|e| &e.min)),
            ("trt_profile_opt_shapes", p.format(|e| &e.opt)),
            ("trt_profile_max_shapes", p.format(|e| &e.max)),
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_precision_graphs_and_profiles_are_asked_for_by_their_ort_names() {
        let o = ModelOptions {
            fp16: true,
            cuda_graph: true,
            ..ModelOptions::default()
        };
        let names = vec!["x".to_string(), "t".to_string()];
        let p = Profile::exact(&names, &[vec![1, 16, 8, 8], vec![1]])
            .widened(&[vec![2, 16, 8, 8], vec![2]]);
        let got = options(&o, Some(Path::new("/c/trt")), Some(&p));
        let get = |k: &str| got.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("trt_fp16_enable"), Some("true"));
        assert_eq!(get("trt_engine_cache_enable"), Some("true"));
        assert_eq!(get("trt_engine_cache_path"), Some("/c/trt"));
        assert_eq!(get("trt_timing_cache_path"), Some("/c/trt"));
        assert_eq!(get("trt_cuda_graph_enable"), Some("true"));
        assert_eq!(get("trt_profile_min_shapes"), Some("x:1x16x8x8,t:1"));
        assert_eq!(get("trt_profile_opt_shapes"), Some("x:2x16x8x8,t:2"));
        assert_eq!(get("trt_profile_max_shapes"), Some("x:2x16x8x8,t:2"));
        assert!(p.covers(&[vec![1, 16, 8, 8], vec![2]]));
        assert!(!p.covers(&[vec![3, 16, 8, 8], vec![1]]));
        let plain = options(&ModelOptions::default(), None, None);
        assert_eq!(plain, vec![("trt_fp16_enable", "false".to_string())]);
    }

    #[test]
    fn the_cache_is_the_models_folder_or_wgraphs() {
        let o = ModelOptions {
            engine_cache: Some(PathBuf::from("/mine")),
            ..ModelOptions::default()
        };
        assert_eq!(cache_dir(&o), Some(PathBuf::from("/mine")));
        if let Some(base) = crate::runtime::cache_base() {
            assert_eq!(
                cache_dir(&ModelOptions::default()),
                Some(base.join("tensorrt"))
            );
        }
    }
}
