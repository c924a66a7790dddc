//! Iterative gradient grafting (Novack et al. 2023 after Agarwal et al. 2020; form reconstructed,
//! `docs/theory/regularizers.md`): the step takes the **direction** of the large-batch update `d` and the
//! **magnitude** of a small-batch gradient,
//! `d ← ‖∇L_{M_1}‖ · d/‖d‖`, with `M_1` the first micro-batch (size `micro`) of the current batch, i.e. the
//! step a small-batch SGD run would have taken from the same point.
use crate::reg_error::{RegError, RegResult};
use imreg_objective::Objective;
use imreg_spectra::dot;

/// Iterative grafting with micro-batches of `micro` examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IterativeGrafting {
    pub micro: usize,
}

impl IterativeGrafting {
    /// Rescales `direction` to the norm of `∇L_{M_1}`. Errors if `micro` is 0 or exceeds the batch, or if the
    /// direction is zero.
    pub fn apply<O: Objective + ?Sized>(
        &self,
        model: &O,
        theta: &[f64],
        rows: &[usize],
        direction: &mut [f64],
    ) -> RegResult<()> {
        if self.micro == 0 || self.micro > rows.len() {
            return Err(RegError::MicroBatch {
                batch: rows.len(),
                micro: self.micro,
            });
        }
        let mut g = vec![0.0; model.dim()];
        model.loss_grad(
            theta,
            imreg_objective::Batch::Indices(&rows[..self.micro]),
            &mut g,
        )?;
        let dn = dot(direction, direction).sqrt();
        if dn == 0.0 {
            return Err(RegError::invalid(
                "direction",
                "zero update: grafting needs a direction",
            ));
        }
        let s = dot(&g, &g).sqrt() / dn;
        direction.iter_mut().for_each(|d| *d *= s);
        Ok(())
    }
}
