#!/usr/bin/env python3
"""spin under a real Slurm: a one-node cluster started on localhost from Debian's packages
(munged, slurmctld, slurmd; every file in a temporary directory, ports chosen free), and
jobs/slurm/demo.sbatch submitted with sbatch (4 tasks, TP 2 x PP 2) on a tiny model:

  1. a job stopped by spin.max_steps completes (COMPLETED, exit 0) and leaves a checkpoint;
  2. the same script resubmitted resumes from it ("loaded ... step 6") and finishes the run,
     writing the same final weights, bitwise, as an uninterrupted run under plain mpirun; so
     does the whole run launched with srun --mpi=pmix instead of mpirun (SPIN_LAUNCHER=srun);
  3. a long job sent SIGUSR1 through Slurm (scancel --batch --signal=USR1, what --signal=B:USR1
     delivers before the time limit) saves a checkpoint, exits 75, requeues itself with
     scontrol requeue, and the requeued run resumes and completes.

Skipped (exit 77, saying why) where Slurm cannot run: binaries missing, not root.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from e2e_common import run_ok  # noqa: E402
from train_test import setup  # noqa: E402

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ["sbatch", "scontrol", "scancel", "sinfo"]


def skip(why):
    print("SKIP: %s" % why)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """slurmctld + slurmd (+ munged) for this host, configured in `root`."""

    def __init__(self, root):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.procs = []
        self.env = dict(os.environ, SLURM_CONF=os.path.join(root, "slurm.conf"))

    def start(self):
        r = self.root
        for d in ["state", "spool", "log", "munge"]:
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.chmod(os.path.join(r, "munge"), 0o700)
        key = os.path.join(r, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        sock = os.path.join(r, "munge", "munge.socket")
        self.procs.append(subprocess.Popen(
            [DAEMONS["munged"], "--foreground", "--force", "--key-file", key, "--socket", sock,
             "--pid-file", os.path.join(r, "munge", "munged.pid"), "--log-file", os.path.join(r, "log", "munged.log"),
             "--seed-file", os.path.join(r, "munge", "munged.seed")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(lambda: os.path.exists(sock), 20, "munged did not start")
        conf = """ClusterName=spintest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock},cred_expire=10
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=30
JobRequeue=1
NodeName={host} CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=60 State=UP OverSubscribe=YES
""".format(host=self.host, ctld_port=free_port(), d_port=free_port(), sock=sock, r=r)
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write(conf)
        self.procs.append(subprocess.Popen([DAEMONS["slurmctld"], "-D", "-i", "-f", self.env["SLURM_CONF"]],
                                           env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        self.procs.append(subprocess.Popen([DAEMONS["slurmd"], "-D", "-f", self.env["SLURM_CONF"], "-N", self.host],
                                           env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(lambda: self.node_state() in ("idle", "idle*") and self.node_state() == "idle", 60,
                 "the node did not become idle", self.logs)

    def node_state(self):
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    def logs(self):
        out = []
        for name in ["slurmctld.log", "slurmd.log", "munged.log"]:
            path = os.path.join(self.root, "log", name)
            if os.path.exists(path):
                out.append("--- %s (tail)\n%s" % (name, "".join(open(path, errors="replace").readlines()[-30:])))
        return "\n".join(out)

    def sbatch(self, args, cwd):
        r = subprocess.run(["sbatch", "--parsable"] + args, env=self.env, cwd=cwd, capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stdout, r.stderr, self.logs())
        return r.stdout.strip().split(";")[0]

    def job(self, job_id):
        r = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=self.env, capture_output=True, text=True)
        return dict(re.findall(r"(\w+)=(\S*)", r.stdout))

    def wait_job(self, job_id, timeout, until=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")):
        state = {}
        wait_for(lambda: state.update(self.job(job_id)) or state.get("JobState") in until, timeout,
                 "job %s did not finish" % job_id, lambda: "%s\n%s" % (state, self.logs()))
        return state

    def stop(self):
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_for(predicate, timeout, what, details=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    sys.exit("FAIL: %s within %d s\n%s" % (what, timeout, details()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spin", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--models", required=True)
    args = p.parse_args()
    missing = [n for n, path in DAEMONS.items() if not os.access(path, os.X_OK)]
    missing += [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        skip("Slurm is not installed (%s missing; Debian: apt-get install slurmctld slurmd slurm-client munge)"
             % ", ".join(missing))
    if os.geteuid() != 0:
        skip("starting slurmd needs root")

    tmp = tempfile.mkdtemp(prefix="spin_slurm_")
    os.chmod(tmp, 0o755)
    slurm = LocalSlurm(os.path.join(tmp, "slurm"))
    try:
        slurm.start()
        print("local Slurm up: node %s idle" % slurm.host)
        run_jobs(args, slurm, tmp)
    finally:
        slurm.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


def run_jobs(args, slurm, tmp):
    setup(tmp)  # tiny byte-level model, text task, the train tests' SPIN settings
    model, data = os.path.join(tmp, "model"), os.path.join(tmp, "data")
    settings = {"model.path": model, "data.train": os.path.join(data, "train.jsonl"),
                "data.validation": os.path.join(data, "validation.jsonl"), "spin.kl_penalty": "1.0",
                "spin.max_iterations": "2", "spin.global_batch_size": "8", "spin.micro_batch_size": "2",
                "spin.rollout_batch_size": "4", "sampling.max_new_tokens": "10", "optim.lr": "3e-3",
                "spin.validation_examples": "0"}

    def overrides(**changes):  # spin.max_steps="6" -> --spin.max_steps 6
        merged = dict(settings, **{k.replace("__", "."): v for k, v in changes.items()})
        return [x for k, v in merged.items() for x in ("--" + k, v)]

    # Open MPI refuses root without these; the test (not the job script) sets them.
    env_args = ["--export=ALL,SPIN_HOME=%s,SPIN_BIN=%s,OMPI_ALLOW_RUN_AS_ROOT=1,OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
                % (ROOT, args.spin)]
    script = os.path.join(ROOT, "jobs", "slurm", "demo.sbatch")
    out = os.path.join(tmp, "run")
    log = os.path.join(tmp, "job-%j.out")
    job_log = lambda job: open(log.replace("%j", job)).read() if os.path.exists(log.replace("%j", job)) else ""

    # 1. Stopped by spin.max_steps after 6 of 12 steps.
    first = slurm.sbatch(env_args + ["--output", log, script] +
                         overrides(checkpoint__save_dir=out, spin__max_steps="6"), cwd=tmp)
    state = slurm.wait_job(first, 120)
    text = open(log.replace("%j", first)).read()
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", (state, text)
    assert open(os.path.join(out, "latest")).read().strip() == "step_00000006", text
    assert "4 tasks" in text and "layout tp 2 x pp 2 x dp 1" in text, text
    print("job %s: 4 tasks, TP 2 x PP 2, stopped at step 6: %s" % (first, state["JobState"]))

    # 2. Resubmitted: resumes at step 6 and finishes; the same weights as one mpirun run.
    second = slurm.sbatch(env_args + ["--output", log, script] + overrides(checkpoint__save_dir=out), cwd=tmp)
    state = slurm.wait_job(second, 120)
    text = open(log.replace("%j", second)).read()
    assert state["JobState"] == "COMPLETED", (state, text)
    assert re.search(r"loaded .*step_00000006 \(step 6", text), text
    whole = os.path.join(tmp, "whole")
    run_ok(args.mpiexec, [args.spin, "train", "--config", os.path.join(ROOT, "jobs", "configs", "demo.ini")] +
           overrides(checkpoint__save_dir=whole), 4)
    for it in (1, 2):
        a = open(os.path.join(out, "iteration_%d" % it, "model.safetensors"), "rb").read()
        b = open(os.path.join(whole, "iteration_%d" % it, "model.safetensors"), "rb").read()
        assert a == b, "iteration %d differs from the uninterrupted run" % it
    lines = [l for l in open(os.path.join(out, "metrics.jsonl")) if '"kind": "train"' in l]
    assert len(lines) == 12, len(lines)
    print("job %s: resumed from step 6, finished 12 steps; weights bitwise those of one mpirun run" % second)

    # 2b. The srun launcher (srun --mpi=pmix): the same run, the same weights.
    srun_out = os.path.join(tmp, "srun")
    srun_env = [env_args[0] + ",SPIN_LAUNCHER=srun"]
    job = slurm.sbatch(srun_env + ["--output", log, script] + overrides(checkpoint__save_dir=srun_out), cwd=tmp)
    state = slurm.wait_job(job, 120)
    text = job_log(job)
    assert state["JobState"] == "COMPLETED" and "srun --mpi=pmix" in text, (state, text)
    for it in (1, 2):
        a = open(os.path.join(srun_out, "iteration_%d" % it, "model.safetensors"), "rb").read()
        assert a == open(os.path.join(whole, "iteration_%d" % it, "model.safetensors"), "rb").read(), it
    print("job %s: launched with srun --mpi=pmix: the same weights, bitwise" % job)

    # 3. SIGUSR1 through Slurm to a long job: checkpoint, exit 75, scontrol requeue, resume.
    long_out = os.path.join(tmp, "long")
    third = slurm.sbatch(env_args + ["--output", log, script] +
                         overrides(checkpoint__save_dir=long_out, spin__max_iterations="8"), cwd=tmp)
    metrics = os.path.join(long_out, "metrics.jsonl")
    wait_for(lambda: os.path.exists(metrics) and open(metrics).read().count("\n") >= 2, 120,
             "the long job made no progress", lambda: job_log(third) + slurm.logs())
    r = subprocess.run(["scancel", "--batch", "--signal=USR1", third], env=slurm.env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: int(slurm.job(third).get("Restarts", "0")) >= 1, 120, "the job was not requeued",
             lambda: job_log(third) + slurm.logs())
    # A requeued job waits out the job credential's lifetime before it starts again (Slurm's
    # default 120 s; cred_expire=10 in this test's slurm.conf).
    state = slurm.wait_job(third, 240)
    text = job_log(third)
    assert state["JobState"] == "COMPLETED", (state, text, slurm.logs())
    stopped = re.search(r"stopped by SIGUSR1 after step (\d+)", text)
    assert stopped and "requeueing job %s" % third in text, text
    step = int(stopped.group(1))
    assert re.search(r"loaded .*step_%08d \(step %d" % (step, step), text), text
    lines = [l for l in open(metrics) if '"kind": "train"' in l]
    assert len(lines) == 48, len(lines)
    print("job %s: SIGUSR1 via scancel --batch -> checkpoint at step %d, exit 75, requeued (Restarts=%s), "
          "resumed and completed 48 steps" % (third, step, state.get("Restarts")))


if __name__ == "__main__":
    main()
