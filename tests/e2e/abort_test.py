#!/usr/bin/env python3
"""A rank that fails while the others wait in a collective stops the whole job: exactly one
'spin: error' line (naming that rank), a non-zero exit status, and no hang."""
import os
import subprocess
import sys

mpiexec, probe = sys.argv[1], sys.argv[2]
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
try:
    r = subprocess.run([mpiexec, "-n", "3", "--oversubscribe", probe], capture_output=True,
                       text=True, timeout=60, env=env)
except subprocess.TimeoutExpired:
    sys.exit("FAIL: the job hung after one rank failed")
errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error:")]
if r.returncode == 0 or errors != ["spin: error: rank 2: deliberate failure on the last rank"]:
    sys.exit("FAIL: exit %d, error lines %r\n%s" % (r.returncode, errors, r.stderr))
print("PASS: exit status %d, %s" % (r.returncode, errors[0]))
