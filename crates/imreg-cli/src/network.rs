//! The `network` model kind: its description (a preset, a spec file or an inline table) resolved for the
//! data, size-checked before it is compiled, PyTorch's default initialization, and `state_dict` files loaded
//! and written by name (with batch norm's running statistics).
use crate::config::{ModelConfig, SpecSource};
use crate::error::{CliError, Result};
use crate::limits::{at_most, network_tape_bytes, spec_widths, MAX_MEMORY_BYTES, MAX_PARAMS};
use imreg_objective::models::common::chunk_len;
use imreg_objective::models::{
    preset, read_state_dict, write_state_dict, Network, NetworkObjective, NetworkSpec, SpecNetwork,
    StandardLoss,
};
use rand::Rng;
use std::path::Path;

/// The network objective of the `network` kind.
pub type SpecObjective = NetworkObjective<SpecNetwork, StandardLoss>;

/// The description of a `network` model for data with `d_in` features per row and `outputs` outputs
/// (classes, or target columns), with `input_shape` and `batch_norm` applied. `file` names the config.
pub fn resolve_spec(model: &ModelConfig, d_in: usize, outputs: usize, file: &Path) -> Result<NetworkSpec> {
    let ModelConfig::Network {
        preset: name,
        spec,
        input_shape,
        batch_norm,
        loss,
    } = model
    else {
        return Err(CliError::Failed(format!(
            "model {} is not a network",
            model.kind()
        )));
    };
    let mut spec = match (name, spec) {
        (Some(name), None) => {
            let input = input_shape.clone().unwrap_or_else(|| vec![d_in]);
            // The logistic loss reads one output (the logit of class 1).
            let classes = if *loss == StandardLoss::Logistic {
                1
            } else {
                outputs
            };
            preset(name, &input, classes).map_err(|e| CliError::input(file, "model.preset", e.to_string()))?
        }
        (None, Some(SpecSource::Inline(spec))) => (**spec).clone(),
        (None, Some(SpecSource::File(path))) => read_spec(path, file)?,
        _ => {
            return Err(CliError::input(
                file,
                "model.preset",
                "give exactly one of preset = \"NAME\" and spec = \"FILE\" (or a [model.spec] table)",
            ))
        }
    };
    if let Some(input) = input_shape {
        spec.input = input.clone();
    }
    if let Some(bn) = batch_norm {
        spec.batch_norm = *bn;
    }
    let features = spec.input.iter().try_fold(1usize, |s, &d| s.checked_mul(d));
    if features != Some(d_in) {
        return Err(CliError::input(
            file,
            "model.input_shape",
            format!(
                "input shape {:?} has {} features per example, the data rows have {d_in} \
                 (give input_shape = [C, H, W] with C·H·W = {d_in})",
                spec.input,
                features.map_or("more than 2^64".to_string(), |f| f.to_string()),
            ),
        ));
    }
    Ok(spec)
}

fn read_spec(path: &Path, file: &Path) -> Result<NetworkSpec> {
    let bad = |reason: String| CliError::input(file, "model.spec", format!("{}: {reason}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    at_most(file, "model.spec", "the spec file's bytes", meta.len(), 1 << 24)?;
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let parsed = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => NetworkSpec::from_toml(&text),
        Some("json") => NetworkSpec::from_json(&text),
        _ => return Err(bad("unknown extension: use .toml or .json".into())),
    };
    parsed.map_err(|e| bad(e.to_string()))
}

/// Compiles `spec` after bounding its widths, then checks its parameter count and the tape of one chunk of
/// the `n` examples (the whole batch when batch norm couples them) against the limits.
pub fn compile(spec: NetworkSpec, n: usize, file: &Path) -> Result<SpecNetwork> {
    at_most(
        file,
        "model.spec",
        "the network's widths",
        spec_widths(&spec),
        MAX_PARAMS,
    )?;
    let net = SpecNetwork::new(spec).map_err(|e| CliError::input(file, "model.spec", e.to_string()))?;
    at_most(file, "model", "parameters p", net.n_params() as u64, MAX_PARAMS)?;
    let rows = if net.couples_examples() { n } else { chunk_len(n) };
    at_most(
        file,
        "model",
        "bytes of one chunk's tape",
        network_tape_bytes(net.tape_floats_per_example(), rows),
        MAX_MEMORY_BYTES,
    )?;
    Ok(net)
}

/// PyTorch's default initialization, times `scale`: a weight of ≥ 2 dimensions (fan-in `k` = its entries per
/// output) and the bias of the same module `U(−1/√k, 1/√k)` (`kaiming_uniform_(a = √5)`); a norm's weight 1
/// and bias 0. Draws from `seed` in parameter order.
pub fn pytorch_init(net: &SpecNetwork, seed: u64, scale: f64) -> Vec<f64> {
    let params = net.parameters();
    let fan_in = |module: &str| {
        params
            .iter()
            .find(|p| p.name == format!("{module}.weight") && p.shape.len() >= 2)
            .map(|p| p.shape[1..].iter().product::<usize>())
    };
    let mut rng = imreg_objective::rng::stream(seed, 0);
    let mut theta = Vec::with_capacity(net.n_params());
    for p in &params {
        let (module, leaf) = p.name.rsplit_once('.').unwrap_or(("", p.name.as_str()));
        match (fan_in(module), p.shape.len(), leaf) {
            (Some(k), _, _) => {
                let bound = scale / (k.max(1) as f64).sqrt();
                theta.extend((0..p.len()).map(|_| bound * (2.0 * rng.random::<f64>() - 1.0)));
            }
            (None, 1, "weight") => theta.extend(std::iter::repeat_n(scale, p.len())),
            _ => theta.extend(std::iter::repeat_n(0.0, p.len())),
        }
    }
    theta
}

/// The objective with the parameters and running statistics of a `safetensors` state dict at `path`, loaded
/// strictly by name and shape (`field` names the argument or config field in errors), and its `θ`.
pub fn load_state_dict(obj: &SpecObjective, path: &Path, field: &str) -> Result<(SpecObjective, Vec<f64>)> {
    let bad = |reason: String| CliError::input(path, field, reason);
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    at_most(
        path,
        field,
        "the state dict's bytes",
        meta.len(),
        MAX_MEMORY_BYTES,
    )?;
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let tensors = read_state_dict(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut net = obj.network().clone();
    let theta = net.load_state_dict(&tensors).map_err(|e| bad(e.to_string()))?;
    let loaded = NetworkObjective::new(net, *obj.loss_fn(), obj.inputs().clone(), obj.targets().clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok((loaded, theta))
}

/// The `state_dict` of the network at `θ` (parameters and running statistics, PyTorch names) as
/// `safetensors` bytes.
pub fn state_dict_bytes(obj: &SpecObjective, theta: &[f64]) -> Result<Vec<u8>> {
    let failed = |e: imreg_objective::ObjectiveError| CliError::Failed(format!("state dict: {e}"));
    let tensors = obj.network().state_dict(theta).map_err(failed)?;
    write_state_dict(&tensors).map_err(|e| failed(e.into()))
}
