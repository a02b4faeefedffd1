#!/bin/sh
# After the restore: the loop is alive, and it goes on counting from where it was (the last
# number grows, and the file holds 1..N without a gap or a restart from 1).
set -e
kill -0 "$CRTEST_PID"
before=$(tail -n 1 out.txt)
sleep 1
cp out.txt seen.txt
after=$(tail -n 1 seen.txt)
test "$after" -gt "$before" || { echo "the loop did not go on: $before then $after"; exit 1; }
seq 1 "$after" | cmp -s - seen.txt || { echo "out.txt is not 1..$after: $(tr '\n' ' ' < seen.txt)"; exit 1; }
