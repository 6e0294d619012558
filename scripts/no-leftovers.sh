#!/usr/bin/env bash
# Runs a command (the test suite: `scripts/no-leftovers.sh cargo test`) and
# fails if it leaves a process behind.
#
# The command runs with MGTEST_RUN_ID set to a value of this run's own, which
# every process it starts inherits (tests/it/common's Process::spawn puts it
# back where a test clears the environment). When the command has ended, any
# process whose environment still holds that value was started by it and
# outlived it: a registry, token server, proxy or FUSE mount a test did not
# stop. Each one is printed with its command line and killed, and the script
# exits 1. Otherwise it exits with the command's status. (The suite runs as
# root, which can read every process's environment; as another user, a
# leftover running as someone else, e.g. nobody, would not be seen.)
#
# The marker is not a MODELGATE_ variable (`modelgate init` refuses unknown
# ones), and is not exported in this shell: only the command and what it
# starts carry it, not this script or the subshells that do the scan.
set -euo pipefail

if (($# == 0)); then
  echo "usage: $0 COMMAND [ARG]..." >&2
  exit 64
fi

marker=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
status=0
MGTEST_RUN_ID=$marker "$@" || status=$?

# PIDs of the processes whose environment holds this run's marker.
leftovers() {
  local environ pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    # (A process that ends while it is read, or one not readable, is skipped.)
    if grep -qzxF "MGTEST_RUN_ID=$marker" "$environ" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

mapfile -t left < <(leftovers)
if ((${#left[@]})); then
  echo "FAILED: ${#left[@]} process(es) outlived \`$*\` (each must be owned by a value that stops it when dropped):" >&2
  for pid in "${left[@]}"; do
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    echo "  pid $pid: ${cmdline:-(ended meanwhile)}" >&2
  done
  kill -TERM "${left[@]}" 2>/dev/null || true
  sleep 1
  kill -KILL "${left[@]}" 2>/dev/null || true
  exit 1
fi
exit "$status"
