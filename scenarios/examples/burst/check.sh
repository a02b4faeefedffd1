#!/bin/sh
# After the restore: the writer is alive, goes on, and records.log holds record 1..N, each
# once, in order (a restore that moved fd 3 would overwrite or leave a gap).
set -e
kill -0 "$CRTEST_PID"
before=$(wc -l < records.log)
sleep 0.5
cp records.log seen.txt
after=$(wc -l < seen.txt)
test "$after" -gt "$before" || { echo "the writer did not go on: $before then $after lines"; exit 1; }
seq 1 "$after" | sed 's/^/record /' | cmp -s - seen.txt || { echo "records.log is not record 1..$after"; exit 1; }
