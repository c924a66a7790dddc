#!/usr/bin/env bash
# The Python package on a clean clone: a fresh venv, the README's install command `pip install ./python`
# (maturin builds the extension; CARGO_TARGET_DIR is the repository's target dir so the release crates that
# `cargo test --workspace --release` compiled are reused where their features agree), the version import, then
# the pytest suite. PyTorch is installed from PyPI (its CPU code runs without a GPU) so the converter tests run
# rather than skip; the analyze comparisons call the release `imreg` binary (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
venv="$root/target/python-ci-venv"
export CARGO_TARGET_DIR="$root/target"
export IMREG_BIN="$root/target/release/imreg"
[ -x "$IMREG_BIN" ] || cargo build --release --bin imreg
# the extension crate is outside the workspace, so the workspace's fmt and clippy steps do not see it
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings
rm -rf "$venv"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check maturin==1.16.0 numpy==2.4.6 pytest==9.2.0
"$py" -m pip install --quiet --disable-pip-version-check torch==2.15.0
"$py" -m pip install --disable-pip-version-check ./python
# outside the source tree, so that `import imreg` is the installed package
(cd "$venv" && "$py" -c "import imreg; print(imreg.__version__)")
"$py" -c "import torch; print('torch', torch.__version__)"
# run from the venv so the in-tree python/imreg (without its compiled module) is not imported
(cd "$venv" && "$venv/bin/pytest" -q -p no:cacheprovider "$root/python/tests")
