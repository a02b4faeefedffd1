#!/bin/sh
# A dump of a process another tracer holds. See scenarios/repro-traced.toml.
set -u
mkdir -p images
setsid sleep 1000 </dev/null >/dev/null 2>&1 &
pid=$!
traced() { grep -q '^TracerPid:[[:space:]]*[1-9]' "/proc/$pid/status"; }
# The other tracer: PTRACE_ATTACH (16) through ptrace(2) (syscall 101 on x86_64), then wait.
# criu must not start before the tracer holds the task: a fixed `sleep 1` was not always
# enough on a loaded machine (perl not yet started, or criu already seizing the task, so
# the attach got EPERM), and criu then dumped an untraced task: an xpass, 2 rounds in 10.
# So the script waits until /proc says the task is traced; the attach is retried too.
perl -e 'for (1 .. 50) {
    if (syscall(101, 16, $ARGV[0] + 0, 0, 0) == 0) { sleep 1000; exit 0 }
    select(undef, undef, undef, 0.1);
  }
  die "ptrace attach: $!\n"' "$pid" &
tracer=$!
trap 'kill -9 $pid $tracer 2>/dev/null' EXIT
i=0
while ! traced && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep TracerPid "/proc/$pid/status"
if ! traced; then
  echo "setup failed: the second tracer could not attach to $pid; criu not run"
  exit 2
fi
criu dump --tree "$pid" --images-dir images --log-file "$PWD/dump.log" -v4
