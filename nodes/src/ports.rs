//! The ports a node kind has, for `wgraph kinds KIND`: found by building the
//! kind with its default parameters (required node references filled with
//! placeholders), so the listing is what the kind really declares. Kinds
//! whose ports come from a model or a file (encoder, denoiser, npy, …) say
//! so instead.

use crate::common::*;
use wgraph_engine::model::ModelTable;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::params::{ParamValue, Params};
use wgraph_engine::settings::Settings;

/// A kind's ports, as built with default parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindPorts {
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
    pub calls: Vec<CallSpec>,
}

/// The ports of `kind` with its defaults, or `None` when they depend on a
/// model, a file or another required parameter.
pub fn default_ports(kind: &dyn NodeKind) -> Option<KindPorts> {
    let scratch = tempfile::tempdir().ok()?;
    let mut params = Params::default();
    for spec in kind.params() {
        let value = match (spec.default, spec.ty) {
            (Some(ParamDefault::Int(i)), _) => ParamValue::Int(i),
            (Some(ParamDefault::Float(f)), _) => ParamValue::Float(f),
            (Some(ParamDefault::Bool(b)), _) => ParamValue::Bool(b),
            (Some(ParamDefault::Str(s)), _) => ParamValue::Str(s.into()),
            (Some(ParamDefault::Choice(c)), _) => ParamValue::Choice(c.into()),
            (Some(ParamDefault::Absent), _) => continue,
            // A required callee: any name (building only records it).
            (None, ParamType::NodeRef) => ParamValue::NodeRef(spec.name.into()),
            (None, _) => return None,
        };
        params.insert(spec.name, value, None);
    }
    let output = OutputConfig {
        dir: scratch.path().to_path_buf(),
        display: DisplayTarget::PngDir(scratch.path().join("display")),
        ..OutputConfig::default()
    };
    let node = kind
        .build(&BuildContext {
            name: "probe",
            params: &params,
            settings: &Settings::default(),
            base_dir: scratch.path(),
            output: &output,
            models: &ModelTable::new(),
        })
        .ok()?;
    Some(KindPorts {
        inputs: node.inputs(),
        outputs: node.outputs(),
        calls: node.calls(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_what_the_kind_declares() {
        let r = crate::registry();
        let euler = default_ports(r.get("euler").unwrap().as_ref()).unwrap();
        assert_eq!(
            euler.inputs,
            [PortSpec::wired("noise"), PortSpec::optional("reuse")]
        );
        assert_eq!(euler.outputs, [PortSpec::output("latent")]);
        assert_eq!(euler.calls[0].args, ["x", "t"]);
        let sde = default_ports(r.get("sde").unwrap().as_ref()).unwrap();
        assert_eq!(sde.inputs[1], PortSpec::optional("step_noise"));
        // Ports from a model: not listed.
        assert_eq!(default_ports(r.get("encoder").unwrap().as_ref()), None);
        // Every kind either lists its ports or says they depend on parameters;
        // none panics.
        for k in r.kinds() {
            let _ = default_ports(k.as_ref());
        }
    }
}
