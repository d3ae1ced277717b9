#!/usr/bin/env bash
# Gathers what the CUDA checks need into .gpu/ (git-ignored; SPIN_GPU_BUNDLE=DIR elsewhere) to
# carry to a machine with a GPU but without Debian's packages (see docs/gpu.md):
#   jobs/gpu/pack.sh [build-dir]     then, there:  .gpu/run.sh [OUT-dir]
# .gpu/run.sh             unpacks the bundle and runs jobs/gpu/checks.sh's steps
# .gpu/bundle.tar.xz      bin/: gpu_test, gpu_bench, spin, train_bench, generate_bench;
#                         root/usr/...: Open MPI relocated
#                         (orterun, orted, libmpi, its plugins and help files, PMIx and its
#                         plugins); lib/: every other shared library the binaries and plugins
#                         load that a non-Debian machine may lack (OpenBLAS, HDF5, Boost, ...);
#                         work/: a tiny model, a SPIN task and configs for the whole-program check.
# Never the CUDA libraries (cuBLAS alone is far over the 64 MiB that can be carried): the GPU
# machine's own are used, from its toolkit or its Python nvidia-* packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${SPIN_GPU_BUNDLE:-.gpu}
[[ -n $out && $out != / ]] || { echo "pack: SPIN_GPU_BUNDLE must name a folder" >&2; exit 2; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

binaries=("$build/tests/gpu_test" "$build/bench/gpu_bench" "$build/src/app/spin" "$build/bench/train_bench"
          "$build/bench/generate_bench")
for b in "${binaries[@]}"; do
  [[ -x $b ]] || { echo "pack: $b missing: build with the CUDA toolkit first (cmake finds nvcc)" >&2; exit 1; }
done
mkdir -p "$stage/bin" "$stage/lib" "$stage/root/usr/bin" "$stage/root/usr/lib/x86_64-linux-gnu" "$stage/root/usr/share"
cp "${binaries[@]}" "$stage/bin/"

# Open MPI under root/usr, as Debian lays it out, so that OPAL_PREFIX=root/usr relocates it.
multiarch=/usr/lib/x86_64-linux-gnu
cp -L /usr/bin/orterun /usr/bin/orted "$stage/root/usr/bin/"
ln -s orterun "$stage/root/usr/bin/mpirun"
cp -a "$multiarch/openmpi" "$multiarch/pmix2" "$stage/root/usr/lib/x86_64-linux-gnu/"
rm -rf "$stage"/root/usr/lib/x86_64-linux-gnu/{openmpi,pmix2}/include
find "$stage/root" \( -name '*.a' -o -name '*.la' \) -delete
cp -a /usr/share/openmpi "$stage/root/usr/share/"
[[ -d /usr/share/pmix ]] && cp -a /usr/share/pmix "$stage/root/usr/share/"
mkdir -p "$stage/root/etc/openmpi" && cp -a /etc/openmpi/. "$stage/root/etc/openmpi/"

# Every shared library that the binaries, the MPI launchers and the plugins load, but the C and
# C++ runtimes (every Linux has them) and CUDA's (the GPU machine's own).
elves=("$stage"/bin/* "$stage"/root/usr/bin/orterun "$stage"/root/usr/bin/orted)
mapfile -t plugins < <(find "$stage/root" -name '*.so*' -type f)
for f in "${elves[@]}" "${plugins[@]}"; do
  ldd "$f" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libstdc++.so*|libgcc_s.so*|ld-linux*) ;;
    libcublas*|libcudart*|libnccl*|libcuda.so*|libnvidia*) ;;
    *) cp -Ln "$lib" "$stage/lib/" ;;
  esac
done

# The whole-program check's inputs: a tiny byte-level model, a small exact-answer task, a
# sequence file to score.
mkdir -p "$stage/work"
/usr/bin/python3 jobs/demo/make_task.py "$stage/work/data" --train 32 --validation 8 --test 4 >/dev/null
# head_dim 64: the GPU runs its default attention kernels (tensor cores in bf16, the fused SIMT
# kernels in float32), not the cuBLAS fallback that smaller heads get.
/usr/bin/python3 tests/data/make_tiny_model.py "$stage/work/model" --vocab 259 --hidden 128 --intermediate 256 \
  --layers 2 --heads 2 --kv-heads 1 --max-positions 64 --byte-tokenizer >/dev/null
cp tests/data/tiny_score.jsonl "$stage/work/score.jsonl"
/usr/bin/python3 tests/data/make_tiny_model.py "$stage/work/score-model" --hidden 128 --intermediate 256 --heads 2 \
  --kv-heads 1 >/dev/null
# A mixture of experts (Mixtral's: four experts, two a token), its routing on the host between kernels.
/usr/bin/python3 tests/data/make_tiny_model.py "$stage/work/score-moe" --mixtral --hidden 128 --intermediate 256 \
  --heads 2 --kv-heads 1 >/dev/null
/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"prompt": (r.get("prompt") or r["tokens"])[:4]}))' tests/data/tiny_score.jsonl >"$stage/work/prompts.jsonl"
cp jobs/gpu/checks.sh jobs/gpu/compare.py jobs/gpu/spin_check.ini jobs/profile_summary.py "$stage/work/"

rm -rf "$out"
mkdir -p "$out"
tar -C "$stage" -cJf "$out/bundle.tar.xz" .
cp jobs/gpu/run.sh "$out/run.sh"
chmod +x "$out/run.sh"
echo "pack: $(du -sh "$stage" | cut -f1) gathered, $(du -sh "$out/bundle.tar.xz" | cut -f1) compressed in $out"
