#!/usr/bin/env bash
# Gathers what the CUDA checks need into .gpu/ (git-ignored) to carry to a machine with a GPU
# but without Debian's packages (see docs/gpu.md):
#   jobs/gpu/pack.sh [build-dir]     then, there:  .gpu/run.sh [OUT-dir]
# .gpu/bin: the GPU test and benchmark (CUDA runtime and GoogleTest linked in); .gpu/lib: the shared
# libraries it needs that such a machine may lack (OpenBLAS for the CPU reference, its Fortran
# runtime), never the CUDA libraries (the GPU machine has its own cuBLAS; run.sh finds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=.gpu
binaries=("$build/tests/gpu_test" "$build/bench/gpu_bench")
for b in "${binaries[@]}"; do
  [[ -x $b ]] || { echo "pack: $b missing: build with the CUDA toolkit first (cmake finds nvcc)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
cp "${binaries[@]}" "$out/bin/"
# Non-system, non-CUDA libraries the binaries load.
for b in "${binaries[@]}"; do
  ldd "$b" | awk '/=> \// {print $3}' | while read -r lib; do
    case $(basename "$lib") in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libstdc++.so*|libgcc_s.so*) ;;  # every Linux has them
      libcublas*|libcudart*|libnccl*|libcuda.so*) ;;                                      # the GPU machine's own
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
done
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs the carried CUDA checks; logs go to ${1:-$OUT} (or ./gpu-logs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=${1:-${OUT:-$here/../gpu-logs}}
mkdir -p "$logs"
# cuBLAS: the toolkit's, or the one in Python's nvidia-* packages.
cuda_libs=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null | tr '\n' ':')
py_libs=$(python3 -c 'import glob, site; print(":".join(sorted(set(p for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib")))))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$here/lib:${cuda_libs}${py_libs}:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$logs/device.txt"
"$here/bin/gpu_test" --gtest_color=no 2>&1 | tee "$logs/gpu_test.log"
status=${PIPESTATUS[0]}  # 77: no GPU (skipped)
echo "run.sh: gpu_test exit $status"
if [[ $status == 0 ]]; then
  "$here/bin/gpu_bench" 2>&1 | tee "$logs/gpu_bench.log"
fi
exit "$status"
RUN
chmod +x "$out/run.sh"
du -sh "$out"
ls -l "$out/bin" "$out/lib"
