#!/usr/bin/env bash
# Runs the carried CUDA checks on a lent GPU (docs/gpu.md): unpacks .gpu/bundle.tar.xz (made by
# jobs/gpu/pack.sh) into a temporary folder, points the relocated Open MPI and the loader at it,
# finds the machine's own cuBLAS/NCCL, and runs work/checks.sh. Logs go to ${1:-$OUT}.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${1:-${OUT:-$here/../gpu-logs}}
mkdir -p "$logs"
bundle=$(mktemp -d /tmp/spin-gpu.XXXXXX)
trap 'rm -rf "$bundle"' EXIT  # what matters is copied to the log folder below
tar -C "$bundle" -xJf "$here/bundle.tar.xz" || { echo "run.sh: cannot unpack the bundle" >&2; exit 2; }

# Open MPI relocated: prefix, plugins, help files; PMIx likewise; the launcher on PATH.
export OPAL_PREFIX=$bundle/root/usr
export PMIX_INSTALL_PREFIX=$bundle/root/usr/lib/x86_64-linux-gnu/pmix2
export PMIX_MCA_mca_base_component_path=$PMIX_INSTALL_PREFIX/lib/pmix
export OMPI_MCA_mca_base_param_files=$bundle/root/etc/openmpi/openmpi-mca-params.conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATH=$bundle/root/usr/bin:$PATH
# cuBLAS and NCCL: the toolkit's, or the ones in Python's nvidia-* packages.
cuda_libs=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null | tr '\n' ':')
py_libs=$(python3 -c 'import glob, site; print(":".join(sorted(set(p for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib") + glob.glob(s + "/nvidia/cu13/lib")))))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$bundle/lib:$bundle/root/usr/lib/x86_64-linux-gnu/openmpi/lib:${cuda_libs}${py_libs}:${LD_LIBRARY_PATH:-}"

"$bundle/work/checks.sh" "$bundle" "$bundle/logs" 2>&1 | tee "$logs/checks.log"
status=${PIPESTATUS[0]}
# What comes back from the device tool is a few files: the summary above, and every log and
# output of the run in one archive.
cp "$bundle/logs/device.txt" "$logs/" 2>/dev/null
tar -C "$bundle/logs" -czf "$logs/outputs.tgz" . 2>/dev/null
exit "$status"
