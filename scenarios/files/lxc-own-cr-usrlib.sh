#!/bin/sh
# Runs LXC's lxc-test-checkpoint-restore with one line added after its lxc-create: the
# busybox template's binds of /lib and /lib64 (symlinks on a merged-/usr system) are made
# to name /usr/lib and /usr/lib64. See scenarios/lxc-own-cr-usrlib.toml.
set -e
rm -rf /tmp/checkpoint
cat > fix-binds.sh <<'FIX'
config="$(lxc-config lxc.lxcpath)/$name/config"
sed -i -e 's,^lxc.mount.entry = /lib ,lxc.mount.entry = /usr/lib ,' \
       -e 's,^lxc.mount.entry = /lib64 ,lxc.mount.entry = /usr/lib64 ,' "$config"
grep '^lxc.mount.entry' "$config"
FIX
sed '/^lxc-create -t busybox/r fix-binds.sh' "$(command -v lxc-test-checkpoint-restore)" > test.sh
grep -q 'fix-binds\|usr/lib64' test.sh
# criu's logs, which the test leaves in /tmp/checkpoint, go to the working directory for
# the scenario's `collect`.
s=0
sh ./test.sh || s=$?
cp /tmp/checkpoint/dump.log /tmp/checkpoint/restore.log . 2>/dev/null || true
exit $s
