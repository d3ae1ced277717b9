#!/usr/bin/env bash
# ptxas resource report of every CUDA kernel (registers, shared memory, stack, spills) for
# sm_80 and sm_90, as a markdown table -- no GPU needed:
#   bench/cuda_resources.sh [nvcc]
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=${1:-/usr/local/cuda/bin/nvcc}
for f in src/kernels/cuda/*.cu; do
  "$nvcc" -std=c++17 -O3 -I src -Xptxas -v --generate-code=arch=compute_80,code=sm_80 \
      --generate-code=arch=compute_90,code=sm_90 -c "$f" -o /dev/null 2>&1
done | python3 -c '
import re, sys
rows, current = [], None
for line in sys.stdin:
    m = re.search(r"Compiling entry function .(\S+). for .(sm_\d+).", line)
    if m:
        name = re.sub(r"^_ZN4spin7kernels\d+_GLOBAL__N__\w+?_\d+_\w+?_cu_\w{8}\d+", "", m.group(1))
        name = re.match(r"([a-z_0-9]+?_kernel)", name).group(1) if re.match(r"[a-z_0-9]+?_kernel", name) else name
        current = {"kernel": name, "arch": m.group(2)}
        rows.append(current)
        continue
    if current is None:
        continue
    for key, pattern in [("stack", r"(\d+) bytes stack frame"), ("spill_st", r"(\d+) bytes spill stores"),
                         ("spill_ld", r"(\d+) bytes spill loads"), ("regs", r"Used (\d+) registers"),
                         ("smem", r"(\d+) bytes smem")]:
        m = re.search(pattern, line)
        if m:
            current[key] = m.group(1)
print("| kernel | arch | registers | shared memory (B) | stack (B) | spill stores / loads (B) |")
print("|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["kernel"], r["arch"])):
    print("| %s | %s | %s | %s | %s | %s / %s |" % (r["kernel"], r["arch"], r.get("regs", "?"), r.get("smem", "0"),
          r.get("stack", "0"), r.get("spill_st", "0"), r.get("spill_ld", "0")))
'
