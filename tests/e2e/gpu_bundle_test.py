#!/usr/bin/env python3
"""The GPU bundle, dry run on a machine without a GPU: jobs/gpu/pack.sh gathers the binaries,
the relocated Open MPI and every shared library they load into a folder, and its run.sh runs
jobs/gpu/checks.sh from there -- as a lent GPU machine (no Debian packages) will. Here every
CPU step of the checks must pass from the bundle (its Open MPI, its libraries, its model and
data), and every CUDA step must get as far as choosing the device and stop there with
"no CUDA device" -- not at a missing library or file -- so that a session lent a GPU spends
its minutes on the GPU, not on the bundle; none is skipped for the run's time budget, and with
no budget left every step is skipped at once and the logs still come back. Skipped (77) where a GPU is visible (the device run
is the check there) or the CUDA path is not built.
"""
import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CPU_STEPS = ["score_cpu", "generate_cpu", "train_cpu", "score_cpu_bf16", "train_cpu_bf16", "train_cpu_lora"]
# What pack.sh leaves to the machine: the C and C++ runtimes and CUDA's libraries.
SYSTEM = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux|libcublas|libcublasLt|libcudart|libnccl|"
                    r"libcuda|libnvidia)[.-]")
CUDA_STEPS = ["score_cuda", "generate_cuda", "generate_cuda_chunked", "train_cuda", "score_cuda_bf16", "train_cuda_bf16",
              "train_cuda_offload_recompute", "train_bench_bf16", "generate_bench_bf16", "train_bench_fp32",
              "generate_bench_fp32", "train_bench_bf16_simt", "train_cuda_lora", "train_bench_bf16_lora"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spin_gpu_bundle_") as tmp:
        bundle, logs = os.path.join(tmp, "bundle"), os.path.join(tmp, "logs")
        env = dict(os.environ, SPIN_GPU_BUNDLE=bundle)
        r = subprocess.run([os.path.join(ROOT, "jobs", "gpu", "pack.sh"), os.path.abspath(args.build)], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("FAIL: pack.sh: %s%s" % (r.stdout, r.stderr))
        print(r.stdout.strip())
        # Every library a binary or plugin loads resolves inside the bundle (this machine has them
        # all at their Debian paths, so running alone would not show one missing from it).
        unpacked = os.path.join(tmp, "unpacked")
        with tarfile.open(os.path.join(bundle, "bundle.tar.xz")) as t:
            t.extractall(unpacked)
        lib_path = ":".join([os.path.join(unpacked, "lib"), os.path.join(unpacked, "root/usr/lib/x86_64-linux-gnu/openmpi/lib")])
        elves = [os.path.join(unpacked, "bin", b) for b in os.listdir(os.path.join(unpacked, "bin"))]
        elves += [os.path.join(unpacked, "root/usr/bin", b) for b in ("orterun", "orted")]
        for base, _, files in os.walk(os.path.join(unpacked, "root")):
            elves += [os.path.join(base, f) for f in files if ".so" in f and not os.path.islink(os.path.join(base, f))]
        outside = set()
        for elf in elves:
            ldd = subprocess.run(["ldd", elf], env=dict(os.environ, LD_LIBRARY_PATH=lib_path), capture_output=True,
                                 text=True).stdout
            for name, path in re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M):
                if not SYSTEM.match(name) and not os.path.realpath(path).startswith(os.path.realpath(unpacked)):
                    outside.add("%s: %s => %s" % (os.path.relpath(elf, unpacked), name, path))
        if outside:
            sys.exit("FAIL: libraries the bundle lacks:\n" + "\n".join(sorted(outside)))
        # The bundle's own Open MPI must serve: nothing of this machine's on PATH but the basics.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_"))}
        r = subprocess.run([os.path.join(bundle, "run.sh"), logs], env=env, capture_output=True, text=True, timeout=900)
        log = open(os.path.join(logs, "checks.log")).read()
        status = dict(re.findall(r"^== (\S+): exit (\d+)$", log, re.M))
        if status.get("gpu_test") != "77":
            print("SKIP: a GPU is visible (gpu_test exit %s): the device run is the check here" % status.get("gpu_test"))
            sys.exit(77)
        with tarfile.open(os.path.join(logs, "outputs.tgz")) as t:
            t.extractall(os.path.join(tmp, "outputs"))
        problems = []
        for step in CPU_STEPS:
            if status.get(step) != "0":
                problems.append("%s: exit %s" % (step, status.get(step)))
        for step in CUDA_STEPS:
            text = open(os.path.join(tmp, "outputs", step + ".log"), errors="replace").read()
            if status.get(step) == "0" or "no CUDA device is visible" not in text:
                problems.append("%s: exit %s, not at the device choice:\n%s" % (step, status.get(step), text[-1500:]))
        over = re.findall(r"^== (\S+): skipped \(", log, re.M)
        if over:
            problems.append("steps skipped for the time budget: %s" % over)
        # With no time left every step is skipped at once, and the logs still come back.
        brief = os.path.join(tmp, "brief")
        r = subprocess.run([os.path.join(bundle, "run.sh"), brief], env=dict(env, SPIN_GPU_BUDGET_S="5"),
                           capture_output=True, text=True, timeout=120)
        brief_log = open(os.path.join(brief, "checks.log")).read()
        skipped = re.findall(r"^== (\S+): skipped \(", brief_log, re.M)
        if r.returncode != len(skipped) or "gpu_test" not in skipped or "train_cpu" not in skipped or \
                not os.path.exists(os.path.join(brief, "outputs.tgz")):
            problems.append("a 5 s budget: exit %d, skipped %s, outputs.tgz %s" % (
                r.returncode, skipped, os.path.exists(os.path.join(brief, "outputs.tgz"))))
        if problems:
            sys.exit("FAIL:\n" + "\n".join(problems) + "\n--- checks.log\n" + log[-4000:])
    print("GPU bundle dry run: %d CPU steps pass from the bundle, %d CUDA steps stop at 'no CUDA device'" %
          (len(CPU_STEPS), len(CUDA_STEPS)))


if __name__ == "__main__":
    main()
