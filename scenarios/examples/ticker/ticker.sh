#!/bin/sh
# Appends 1, 2, 3, ... to out.txt, one number every 0.1 s, for ever.
i=0
touch started
while :; do
    i=$((i + 1))
    echo "$i" >> out.txt
    sleep 0.1
done
