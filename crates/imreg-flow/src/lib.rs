//! imreg-flow
