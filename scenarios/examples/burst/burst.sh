#!/bin/sh
# Appends "record N" lines to records.log through fd 3, four at a time, then rests 0.2 s:
# I/O in bursts, as a log writer does.
exec 3>>records.log; i=0; touch started
while :; do i=$((i+1)); echo "record $i" >&3; [ $((i % 4)) = 0 ] && sleep 0.2; done
