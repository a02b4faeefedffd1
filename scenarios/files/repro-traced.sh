#!/bin/sh
# A dump of a process another tracer holds. See scenarios/repro-traced.toml.
set -u
mkdir -p images
setsid sleep 1000 </dev/null >/dev/null 2>&1 &
pid=$!
# The other tracer: PTRACE_ATTACH (16) through ptrace(2) (syscall 101 on x86_64), then wait.
perl -e 'syscall(101, 16, $ARGV[0] + 0, 0, 0) == 0 or die "ptrace attach: $!\n"; sleep 1000' "$pid" &
tracer=$!
trap 'kill -9 $pid $tracer 2>/dev/null' EXIT
sleep 1
grep TracerPid /proc/$pid/status
criu dump --tree "$pid" --images-dir images --log-file "$PWD/dump.log" -v4
