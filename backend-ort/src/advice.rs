//! Load errors in plain words: what ONNX Runtime's message means (not an
//! ONNX model, an opset or operator it lacks) and how to convert the model.

use std::path::Path;
use wgraph_engine::model::ModelError;

pub(crate) fn load_error(path: &Path, message: &str) -> ModelError {
    let lower = message.to_ascii_lowercase();
    if let Some(advice) = operator_advice(message) {
        return ModelError::Load(format!("cannot load model {}: {advice}", path.display()));
    }
    let what = if lower.contains("protobuf parsing failed") || lower.contains("invalid_protobuf") {
        "it is not an ONNX model"
    } else {
        "ONNX Runtime could not load it"
    };
    ModelError::Load(format!(
        "cannot load model {}: {what} ({})",
        path.display(),
        message.trim()
    ))
}

/// The text between `start` and the next `end` in `s`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// How to convert a model to an opset: the ONNX package's version converter.
fn convert_hint(opset: &str) -> String {
    format!(
        "convert it with the ONNX package's version converter (`python3 -c \"import onnx, onnx.version_converter as c; \
         onnx.save(c.convert_version(onnx.load('IN.onnx'), {opset}), 'OUT.onnx')\"`) or re-export it \
         (`torch.onnx.export(..., opset_version={opset})`)"
    )
}

/// A clear message for the operator and opset errors ONNX Runtime gives
/// when a model needs more than it has: which operator or opset, and how
/// to convert the model.
pub(crate) fn operator_advice(message: &str) -> Option<String> {
    // "Opset 40 is under development … Current official support for domain
    // ai.onnx is till opset 26."
    if let (Some(opset), Some(rest)) = (
        between(message, "Opset ", " is under development"),
        message.split("Current official support for domain ").nth(1),
    ) {
        let (domain, max) = rest.split_once(" is till opset ")?;
        let max = max.trim_end_matches(|c: char| !c.is_ascii_digit());
        return Some(format!(
            "it uses opset {opset} of `{domain}`, but this ONNX Runtime supports up to opset {max}: {}",
            convert_hint(max)
        ));
    }
    // "Could not find an implementation for ConvInteger(10) node with name …"
    if let Some(op) = between(message, "Could not find an implementation for ", " node") {
        return Some(format!(
            "this ONNX Runtime has no implementation of operator {op} (operator(opset version)) for the types the model uses: \
             {}, or change the types the operator gets",
            convert_hint("17")
        ));
    }
    // "com.example:FancyOp(-1) is not a registered function/op"
    if let Some(op) = message
        .split_whitespace()
        .find(|w| w.contains(':') && w.contains('('))
        .filter(|_| message.contains("is not a registered function/op"))
    {
        let op = op.trim_start_matches("error:");
        return Some(format!(
            "operator {op} is not one this ONNX Runtime knows (a custom operator needs its library): \
             re-export the model with standard ONNX operators"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn opset_and_operator_errors_name_the_operator_and_the_fix() {
        let future = "Load model from m.onnx failed:/src/model_load_utils.h:46 void f() ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions. Opset 40 is under development and support for this is limited. Current official support for domain ai.onnx is till opset 26.";
        let m = super::operator_advice(future).unwrap();
        assert!(m.starts_with("it uses opset 40 of `ai.onnx`, but this ONNX Runtime supports up to opset 26: convert it"), "{m}");
        assert!(
            m.contains("convert_version(onnx.load('IN.onnx'), 26)"),
            "{m}"
        );
        let custom = "Load model from m.onnx failed:Fatal error: com.example:FancyOp(-1) is not a registered function/op";
        let m = super::operator_advice(custom).unwrap();
        assert!(
            m.starts_with("operator com.example:FancyOp(-1) is not one this ONNX Runtime knows"),
            "{m}"
        );
        let missing = "Could not find an implementation for ConvInteger(10) node with name 'c'";
        let m = super::operator_advice(missing).unwrap();
        assert!(m.contains("operator ConvInteger(10)"), "{m}");
        assert_eq!(super::operator_advice("some other failure"), None);
    }
}
