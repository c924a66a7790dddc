//! imreg-ad
