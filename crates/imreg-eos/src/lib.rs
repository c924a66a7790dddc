//! imreg-eos
