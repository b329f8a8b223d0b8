#!/usr/bin/env bash
# A real one-node SLURM cluster (munged, slurmctld, slurmd from Debian's slurm-wlm) in a
# directory of its own, for the `slurm` tests. Several may run on one machine: each picks
# free ports at start and keeps its key, socket, state, logs and pid files in its directory.
#
#   slurm-cluster.sh start DIR   start the three daemons, wait for the node to be idle, write
#                                DIR/env (export SLURM_CONF=...); exit 1 with the reason in
#                                DIR/unavailable when it cannot
#   slurm-cluster.sh stop DIR    cancel every job, stop exactly the daemons it started
#   slurm-cluster.sh status DIR  exit 0 when the three daemons are up
#
# Settings (environment): KD_SLURM_CPUS (CPUs the node advertises, default 4, so 2-rank jobs
# and a 2-wide job array fit on a 2-core machine), KD_SLURM_CRED_EXPIRE (default 10 s: a
# requeued job restarts cred_expire + 1 s after its requeue; SLURM's default is 120).
# Facts this relies on (Debian 12, SLURM 22.05): as root, no systemd and no cgroups, so
# proctrack/linuxproc and task/none; Debian's OpenMPI speaks PMIx only (srun --mpi=pmix).
set -uo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
sock=$dir/munge/socket

say() { echo "slurm-cluster: $*" >&2; }
# the reason goes to DIR/unavailable, which the tests print when they skip
unavailable() { echo "$*" >"$dir/unavailable"; say "cannot start: $*"; exit 1; }

# pid of daemon $1 when its pid file names a live process of that name
pid_of() {
  local f=$dir/run/$1.pid pid
  [ -s "$f" ] || return 0
  pid=$(<"$f")
  [ -r "/proc/$pid/comm" ] && [ "$(<"/proc/$pid/comm")" = "$1" ] && echo "$pid"
  return 0
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    [ "$p" != "${1:-}" ] && port_free "$p" && { echo "$p"; return 0; }
  done
  return 1
}

node_state() { SLURM_CONF=$conf sinfo -h -N -o '%T' 2>/dev/null | head -1; }

start() {
  rm -f "$dir/unavailable"
  [ "$(id -u)" = 0 ] || unavailable "needs root (SlurmUser=root, as in CI)"
  local d
  for d in munged munge slurmctld slurmd sbatch srun; do
    command -v "$d" >/dev/null || unavailable "$d not found (Debian: apt-get install slurmctld slurmd slurm-client munge)"
  done
  if [ -n "$(pid_of slurmctld)$(pid_of slurmd)$(pid_of munged)" ]; then
    say "daemons of an earlier cluster still run in $dir: stopping them"
    stop
  fi
  local ctld_port slurmd_port
  ctld_port=$(free_port) && slurmd_port=$(free_port "$ctld_port") || unavailable "no free TCP port found"
  rm -rf "$dir/state" "$dir/spool" "$dir/munge" "$dir/key" "$dir/run" "$dir/log"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/key" "$dir/run" "$dir/log"
  chmod 755 "$dir/munge"  # munged: the socket's directory must be world-searchable
  chmod 700 "$dir/key"
  head -c 1024 /dev/urandom >"$dir/key/munge.key"
  chmod 400 "$dir/key/munge.key"

  local cpus=${KD_SLURM_CPUS:-4} mem
  mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
  cat >"$conf" <<EOF
# written by scripts/ci/slurm-cluster.sh
ClusterName=kd$(basename "$dir" | tr -cd 'a-z0-9' | head -c 20)
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=${KD_SLURM_CRED_EXPIRE:-10}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=1,bf_interval=1
JobRequeue=1
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
KillWait=10
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$dir/plugstack.conf"
  munged -S "$sock" --key-file="$dir/key/munge.key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/key/seed" \
    || unavailable "munged did not start: $(tail -2 "$dir/log/munged.log" 2>/dev/null)"
  munge -S "$sock" -n </dev/null | unmunge -S "$sock" >/dev/null || { stop; unavailable "munge cannot encode and decode"; }
  slurmctld -f "$conf" || { stop; unavailable "slurmctld did not start: $(tail -3 "$dir/log/slurmctld.log")"; }
  slurmd -f "$conf" -N localhost || { stop; unavailable "slurmd did not start: $(tail -3 "$dir/log/slurmd.log")"; }
  local state=""
  for _ in $(seq 240); do
    state=$(node_state)
    [ "$state" = idle ] && break
    sleep 0.25
  done
  [ "$state" = idle ] || { stop; unavailable "the node is '$state', not idle, after 60 s (see $dir/log)"; }
  echo "export SLURM_CONF=$conf" >"$dir/env"
  say "up in $dir: ports $ctld_port/$slurmd_port, $cpus CPUs"
}

stop() {
  if [ -n "$(pid_of slurmctld)" ]; then
    SLURM_CONF=$conf scancel --quiet --user=root 2>/dev/null
    for _ in $(seq 80); do
      [ -z "$(SLURM_CONF=$conf squeue -h -t R,CG,S,PD 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  local d pid
  for d in slurmd slurmctld munged; do
    pid=$(pid_of "$d")
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$dir/run/$d.pid"
  done
  rm -f "$dir/env"
  return 0
}

status() { [ -n "$(pid_of munged)" ] && [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ]; }

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status DIR" >&2; exit 2 ;;
esac
