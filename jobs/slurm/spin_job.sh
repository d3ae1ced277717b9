# The body of spin's Slurm job scripts (sourced by *.sbatch; not run on its own).
#
#   spin_job ARGS...   runs `spin ARGS...` on every task of the allocation and handles stops:
#
# - The launcher: SPIN_LAUNCHER=mpirun (default; Open MPI reads the allocation from Slurm) or
#   SPIN_LAUNCHER=srun (srun --mpi=$SPIN_SRUN_MPI, default pmix: what most sites' Open MPI uses).
# - Signals: submit with `--signal=B:USR1@120` (the scripts do): Slurm sends SIGUSR1 to this
#   batch shell 120 s before the time limit; it is forwarded to the launcher, which forwards it
#   to every rank. spin train agrees on the stop at the next step boundary, saves a checkpoint
#   and exits 75 (spin generate --save-every: at the end of its round, the round's lines
#   written). A SIGTERM (scancel, preemption with GraceTime) is forwarded the same way.
# - Exit status 75 ("requeue me"): the job is requeued with `scontrol requeue` (the scripts use
#   --requeue and --open-mode=append), and the requeued run resumes from <save_dir>/latest
#   (the scripts pass --checkpoint.resume true, which starts fresh when there is no checkpoint;
#   spin generate goes on after the lines in <output>.partial by itself).
#   SPIN_REQUEUE=0 turns the requeue off (the job then ends with status 75).
# - SPIN_BIN: the spin binary (default: build/src/app/spin under SPIN_HOME, the repository,
#   default the submission directory).

spin_environment() {
  # One rank per GPU; the CPU threads of each rank are those Slurm gave the task.
  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}
  # NCCL: warnings only; the site's fabric settings are left to the site's modules (uncomment
  # and edit when the defaults pick the wrong interface or HCA).
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  # export NCCL_SOCKET_IFNAME=ib0        # bootstrap interface
  # export NCCL_IB_HCA=mlx5              # InfiniBand adapters to use
  # export NCCL_NET_GDR_LEVEL=PHB        # GPUDirect RDMA distance
  export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1}  # overlap order, as Megatron
  # NCCL launches the kernels of its several communicators (the DP all-reduce overlapped beside
  # TP collectives) in the order the ranks issue them (docs/gpu.md, overlap).
  export NCCL_LAUNCH_ORDER_IMPLICIT=${NCCL_LAUNCH_ORDER_IMPLICIT:-1}
  # Open MPI: no openib warnings on InfiniBand machines (UCX carries MPI there).
  export OMPI_MCA_btl=${OMPI_MCA_btl:-^openib}
}

spin_launch_command() {
  local bin=$1
  case ${SPIN_LAUNCHER:-mpirun} in
    mpirun) echo "mpirun --bind-to none -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x NCCL_DEBUG -x CUDA_DEVICE_MAX_CONNECTIONS -x NCCL_LAUNCH_ORDER_IMPLICIT $bin" ;;
    srun) echo "srun --mpi=${SPIN_SRUN_MPI:-pmix} --kill-on-bad-exit=1 $bin" ;;
    *) echo "spin job: SPIN_LAUNCHER=${SPIN_LAUNCHER} is not mpirun or srun" >&2; return 1 ;;
  esac
}

spin_job() {
  local home=${SPIN_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
  local bin=${SPIN_BIN:-$home/build/src/app/spin}
  if [[ ! -x $bin ]]; then
    echo "spin job: $bin is not an executable (set SPIN_BIN or SPIN_HOME)" >&2
    return 1
  fi
  spin_environment
  local launch
  launch=$(spin_launch_command "$bin") || return 1
  echo "spin job: ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NUM_NODES:-1} node(s), ${SLURM_NTASKS:-?} tasks: $launch $*"

  # The launcher runs in the background so that this shell can forward signals at once (bash
  # runs a trap only when the foreground command ends; `wait` returns early instead).
  local child
  forward() { echo "spin job: got SIG$1, forwarding it to the ranks"; kill -s "$1" "$child" 2>/dev/null; }
  trap 'forward USR1' USR1
  trap 'forward TERM' TERM
  $launch "$@" &
  child=$!
  local status
  while true; do
    wait "$child"
    status=$?
    # A signal interrupted `wait` (status > 128) while the launcher still runs: wait again.
    if ((status > 128)) && kill -0 "$child" 2>/dev/null; then continue; fi
    break
  done
  trap - USR1 TERM

  if ((status == 75)); then
    if [[ ${SPIN_REQUEUE:-1} == 1 && -n ${SLURM_JOB_ID:-} ]]; then
      echo "spin job: stopped to be resumed (exit 75): requeueing job $SLURM_JOB_ID"
      scontrol requeue "$SLURM_JOB_ID" && return 0
      echo "spin job: scontrol requeue failed; resubmit this script to resume" >&2
    fi
    return 75
  fi
  echo "spin job: spin exited with status $status"
  return "$status"
}
