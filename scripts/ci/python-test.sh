#!/usr/bin/env bash
# The Python package on a clean clone: a fresh venv, the README's install command `pip install ./python`
# (maturin builds the extension; CARGO_TARGET_DIR is the repository's target dir so the release crates that
# `cargo test --workspace --release` compiled are reused where their features agree), the version import, then
# the pytest suite and the EoS example. PyTorch is installed from PyPI (its CPU code runs without a GPU) so the
# converter tests run rather than skip; the analyze comparisons call the release `imreg` binary (built here if
# missing).
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
# PyPI's Linux PyTorch wheel pulls in the CUDA libraries: the venv takes about 5.5 GiB (measured), and pip holds
# the downloaded wheels beside it while it installs. Its wheel cache would keep another copy, so it is off
# (--no-cache-dir). A disk that cannot hold this fails here, by name, not in the middle of a download.
need_kib=$((10 * 1024 * 1024))
mkdir -p "$root/target"
free_kib=$(df -Pk "$root/target" | awk 'NR == 2 {print $4}')
if [ "$free_kib" -lt "$need_kib" ]; then
  echo "python-test: $((free_kib / 1024)) MiB free on the disk of $root/target; the venv with PyTorch needs about 10 GiB" >&2
  exit 1
fi
python3 -m venv "$venv"
py="$venv/bin/python"
pip_install=("$py" -m pip install --no-cache-dir --disable-pip-version-check)
"${pip_install[@]}" --quiet maturin==1.16.0 numpy==2.4.6 pytest==9.2.0
"${pip_install[@]}" --quiet torch==2.15.0
"${pip_install[@]}" ./python
# outside the source tree, so that `import imreg` is the installed package
(cd "$venv" && "$py" -c "import imreg; print(imreg.__version__)")
"$py" -c "import torch; print('torch', torch.__version__)"
# run from the venv so the in-tree python/imreg (without its compiled module) is not imported
(cd "$venv" && "$venv/bin/pytest" -q -p no:cacheprovider "$root/python/tests")
# the EoS example runs as the guide says (it plots only when matplotlib is installed; here it prints)
(cd "$venv" && "$py" "$root/examples/python/eos_run.py" > /dev/null)
