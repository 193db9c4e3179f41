#!/usr/bin/env bash
# A one-node SLURM on this machine (Debian's slurm-wlm and munge), for CI and for trying the
# array jobs: `start DIR` writes DIR/slurm.conf, starts munged, slurmctld and slurmd, and waits
# for the node; `stop DIR` stops them. Prints `export SLURM_CONF=DIR/slurm.conf`.
# Needs root (the daemons run as root here; a real cluster has its own).
set -euo pipefail
cmd=${1:?usage: local-cluster.sh start|stop DIR}; dir=$(mkdir -p "${2:?}" && cd "$2" && pwd)
conf="$dir/slurm.conf"
if [ "$cmd" = stop ]; then
  for p in slurmd slurmctld; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  exit 0
fi
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool"
cat > "$conf" <<CONF
ClusterName=tell-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"
if ! munge -n >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
  munged --force
fi
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 60); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    echo "export SLURM_CONF=$conf"
    exit 0
  fi
  sleep 1
done
echo "local-cluster: the node did not come up; logs in $dir" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
