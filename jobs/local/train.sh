#!/usr/bin/env bash
# SPIN on one machine with mpirun:
#   jobs/local/train.sh NP CONFIG.ini [--section.key value ...]
# e.g. jobs/local/train.sh 4 jobs/configs/demo.ini. NP ranks (one per GPU on a GPU machine);
# the config's tp x pp must divide NP. The run resumes from <save_dir>/latest when there is one.
# To stop it cleanly, send SIGUSR1 (or SIGTERM) to mpirun: it forwards the signal, the ranks
# save a checkpoint at the next step and exit with status 75; run the same command to resume.
# Environment: SPIN_BIN (default build/src/app/spin), OMP_NUM_THREADS (default 1 per rank).
set -euo pipefail
if (($# < 2)); then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
np=$1
config=$2
shift 2
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-${OMP_NUM_THREADS:-1}}
exec mpirun -np "$np" --bind-to none -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS \
    "${SPIN_BIN:-build/src/app/spin}" train --config "$config" --checkpoint.resume true "$@"
