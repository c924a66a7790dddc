//! imreg-sgd
