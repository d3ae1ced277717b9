#!/usr/bin/env bash
# Sets spin up on a fresh Debian 12 machine and runs it, in one idempotent command:
# installs the Debian packages it needs (only those missing), builds (Release) into build/,
# then runs either the main job or the whole test suite. Run as root or with sudo available.
#
#   jobs/local/setup.sh run     # the main job: the SPIN demo (jobs/demo/run_demo.sh, ~2 minutes)
#   jobs/local/setup.sh test    # the whole test suite (unit, MPI, end-to-end), then the CUDA kernels' race
#                               # check (jobs/local/race_check.sh)
#
# Environment: SPIN_WERROR=ON turns warnings into errors (CI does this); BUILD_DIR (build).
set -euo pipefail

mode=${1:-}
if [[ "$mode" != run && "$mode" != test ]]; then
  echo "usage: $0 run|test" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}

# ---- Debian packages ---------------------------------------------------------------------
packages=(build-essential cmake ninja-build pkg-config python3 python3-venv
          openmpi-bin libopenmpi-dev libhdf5-openmpi-dev libboost-program-options-dev
          libgtest-dev libopenblas-dev nlohmann-json3-dev libsentencepiece-dev libxxhash-dev
          python3-matplotlib)
# Test oracles and the benchmark's comparison: PyTorch from Debian (psutil and yaml for PEFT's, Jinja2 for
# transformers' chat templates in the data tool's test);
# and a one-node Slurm for the job-script test.
[[ "$mode" == test ]] && packages+=(python3-torch python3-h5py python3-numpy python3-psutil python3-yaml python3-jinja2 slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "spin setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ---- test oracle: Hugging Face transformers and PEFT (PyPI), beside Debian's torch -----------
cmake_args=()
if [[ "$mode" == test ]]; then
  venv=$(realpath -m "$build/oracle-venv")
  if ! "$venv/bin/python" -c "import torch, transformers, peft, pyarrow" 2>/dev/null; then
    echo "spin setup: creating the test-oracle environment in $venv (transformers, peft and pyarrow from PyPI)"
    [[ -x "$venv/bin/pip" ]] || /usr/bin/python3 -m venv --system-site-packages "$venv"
    # pyarrow: jobs/chat_to_ids.py's Parquet input (17.0.0 runs on Debian's NumPy 1.24; 26.0 needs NumPy 2).
    "$venv/bin/pip" install --quiet --disable-pip-version-check "transformers==4.40.2" "pyarrow==17.0.0"
    # Without their dependencies: Debian's torch calls itself 1.13.0a0, below peft's torch>=1.13.0, and
    # pip would fetch a torch of its own (5 GB); the rest (psutil, pyyaml) are Debian's or
    # transformers'.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "peft==0.10.0" "accelerate==0.27.2"
  fi
  cmake_args+=("-DSPIN_ORACLE_PYTHON=$venv/bin/python")
fi

# ---- build ---------------------------------------------------------------------------------
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DSPIN_WERROR="${SPIN_WERROR:-OFF}" "${cmake_args[@]}"
cmake --build "$build" --parallel

# Open MPI refuses root without these; they belong to this launcher, not to the program.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# OpenBLAS's kernels, named: Debian 12's OpenBLAS (0.3.21) does not know CPUs newer than it
# (Emerald Rapids, family 6 model 207, among them) and falls back to its Prescott kernels (SSE3: a
# fraction of the machine's sgemm rate), and on an AVX-512 CPU it knows it picks the SkylakeX
# kernels, which sum in another order. Any AVX2 CPU runs the Haswell kernels -- what OpenBLAS picks
# on the AVX2 machines the bf16 tests' tolerances were measured on -- so every machine rounds alike
# (docs/performance.md). A value already set is kept.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -qw avx2 /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Haswell
fi

if [[ "$mode" == run ]]; then
  jobs/demo/run_demo.sh "$build"
else
  ctest --test-dir "$build" --output-on-failure --parallel 2
  # The CUDA kernels' source under ThreadSanitizer (docs/gpu.md), in a build of its own.
  jobs/local/race_check.sh "$build-tsan"
fi
