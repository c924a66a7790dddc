//! imreg-flow: our DOP853 (8th order, Hairer's coefficients, 7th-order dense output), fixed-step RK4 with a
//! curvature-scaled step (Cohen et al.'s reference flow), gradient flow and the
//! modified flows of backward error analysis (`C_GD`, `C_SGD` for a fixed partition and over random
//! partitions, the fixed-order flow, GD's second-order modified equation, the principal flow).
//!
//! ```
//! use imreg_flow::{dop853::Dop853Options, field::integrate_field, flows::ModifiedGdFlow};
//! use imreg_objective::models::LogCoshQuartic;
//! let obj = LogCoshQuartic::random(6, 2, 7).unwrap();
//! // The flow on C_GD = C + (ε/4)‖∇C‖² for ε = 0.1, integrated to t = 1.
//! let flow = ModifiedGdFlow::new(&obj, 0.1).unwrap();
//! let (w, report) = integrate_field(&flow, 0.0, &[0.5, -0.5], 1.0, &Dop853Options::with_tol(1e-12, 1e-14)).unwrap();
//! assert!(w.iter().all(|v| v.is_finite()) && report.rejected <= report.accepted);
//! ```
pub mod dop853;
mod dop853_tableau;
pub mod error;
pub mod field;
pub mod flows;
pub mod rk4;

pub use dop853::{integrate, integrate_dense, Dop853Options, Dop853Report};
pub use error::{FlowError, Result};
pub use field::{integrate_field, integrate_field_dense, VectorField};
pub use rk4::{integrate_rk4, Rk4Options, Rk4Report};
