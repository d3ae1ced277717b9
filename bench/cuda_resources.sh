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
def demangle(mangled):  # the last component of _ZN<len><id>...<len><id>[ILi<n>E]..., and <n>
    rest, parts = mangled[3:] if mangled.startswith("_ZN") else mangled, []
    while rest[:1].isdigit():
        digits = re.match(r"\d+", rest).group(0)
        parts.append(rest[len(digits):len(digits) + int(digits)])
        rest = rest[len(digits) + int(digits):]
    if not parts:
        return mangled
    element_names = {"f": "float", "13__nv_bfloat16": "bf16"}
    # A kernel templated on its element types (one or two; S<n>_ repeats an earlier one).
    typed = re.match(r"I(f|13__nv_bfloat16)(f|13__nv_bfloat16|S\d*_)?E", rest)
    if typed:
        names = [element_names[typed.group(1)]]
        if typed.group(2):
            names.append(element_names.get(typed.group(2), names[0]))
        return parts[-1] + "<%s>" % ", ".join(names)
    template = re.match(r"ILi(\d+)E(f|13__nv_bfloat16)?", rest)
    if not template:
        return parts[-1]
    element = {"f": ", float", "13__nv_bfloat16": ", bf16"}.get(template.group(2) or "", "")
    # An enumerator after the size (the DkvPart of tc_dkv_kernel): L N <its type> E <value> E.
    enumerator = re.match(r"LN(?:S\d*_)?\d+([A-Za-z_]\w*?)E(\d+)E", rest[template.end():])
    if enumerator:
        names = {"DkvPart": ["Both", "Values", "Keys"]}.get(enumerator.group(1))
        value = int(enumerator.group(2))
        element += ", " + (names[value] if names else "%s %d" % (enumerator.group(1), value))
    return parts[-1] + "<%s%s>" % (template.group(1), element)
rows, current = [], None
for line in sys.stdin:
    m = re.search(r"Compiling entry function .(\S+). for .(sm_\d+).", line)
    if m:
        name = demangle(m.group(1))
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
