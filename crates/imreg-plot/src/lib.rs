//! imreg-plot
