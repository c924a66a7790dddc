//! imreg-taylor
