#!/bin/sh
# Holds data.txt open on fd 3 with its position at 4, then sleeps.
printf '0123456789' > data.txt
exec 3<>data.txt
printf 'abcd' >&3
touch started
exec sleep 1000
