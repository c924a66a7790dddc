//! imreg-spectra
