#!/bin/sh
# A restore into a cgroup that stopped being a leaf. See scenarios/repro-cgroup-busy.toml.
# Works in the scenario's working directory; leaves the guest's cgroups as it found them.
set -u
root=/sys/fs/cgroup
cg=$root/crtest-busy
had_memory=0
grep -qw memory $root/cgroup.subtree_control && had_memory=1
cleanup() {
    for p in $(cat $cg/leaf/cgroup.procs $cg/leaf/child/cgroup.procs 2>/dev/null); do
        kill -9 "$p" 2>/dev/null
    done
    sleep 0.2
    rmdir $cg/leaf/child $cg/leaf $cg 2>/dev/null
    [ $had_memory = 1 ] || echo -memory > $root/cgroup.subtree_control
}
trap cleanup EXIT
mkdir -p images $cg/leaf
# memory is a domain controller: a cgroup that hands it to children may not hold
# processes itself (cgroup v2's no-internal-process rule).
echo +memory > $root/cgroup.subtree_control
echo +memory > $cg/cgroup.subtree_control
setsid sh -c "echo \$\$ > $cg/leaf/cgroup.procs; exec sleep 1000" </dev/null >/dev/null 2>&1 &
sleep 0.5
pid=$(cat $cg/leaf/cgroup.procs)
echo "tree $pid in cgroup $(cut -d: -f3 /proc/$pid/cgroup)"
criu dump --tree "$pid" --images-dir images --log-file "$PWD/dump.log" -v4 || exit 1
echo "dumped; the leaf now gets a child and hands it memory"
mkdir $cg/leaf/child
echo +memory > $cg/leaf/cgroup.subtree_control
criu restore --images-dir images --log-file "$PWD/restore.log" -v4 --restore-detached
