#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost for tests (Debian/Ubuntu, root, no systemd).
# Installs slurm-wlm and munge with apt if missing. State, logs and PID files go to a fresh
# folder ($LOCAL_SLURM_STATE, default /tmp/local-slurm). The config goes to /etc/slurm, not
# beside them: Snakemake's job-step plugin drops SLURM_CONF from the environment of its srun.
# It refuses to replace an /etc/slurm/slurm.conf that it did not write.
# Prints "name pid" for each daemon it started, so a caller can stop exactly those.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${LOCAL_SLURM_STATE:-/tmp/local-slurm}
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null </dev/null
fi
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  rm -f /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 40); do munge_ok && break; sleep 0.25; done
  munge_ok || { echo "munged did not come up" >&2; exit 1; }
  echo "munged $(cat /run/munge/munged.pid 2>/dev/null || pgrep -n -x munged)"
fi
rm -rf "$state"; mkdir -p "$state/ctld" "$state/d"
# slurmctld runs as the slurm user: it must reach its state folder and read the config.
chmod 755 "$state"; chown slurm:slurm "$state" "$state/ctld"
conf=/etc/slurm/slurm.conf
marker=$(head -1 "$here/slurm.conf")
if [ -e "$conf" ] && [ "$(head -1 "$conf")" != "$marker" ]; then
  echo "$conf belongs to another SLURM setup; not replacing it" >&2; exit 1
fi
mkdir -p /etc/slurm
sed -e "s|@STATE@|$state|g" -e "s|@CPUS@|$(nproc)|" \
    -e "s|@MEM_MB@|$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))|" \
    "$here/slurm.conf" > "$conf"
# Daemons fork into the background; their PID files appear a moment later.
pid_of() { for _ in $(seq 1 50); do [ -s "$1" ] && break; sleep 0.1; done; cat "$1"; }
/usr/sbin/slurmctld || { tail -5 "$state/slurmctld.log" >&2; exit 1; }
echo "slurmctld $(pid_of "$state/slurmctld.pid")"
/usr/sbin/slurmd || { tail -5 "$state/slurmd.log" >&2; exit 1; }
echo "slurmd $(pid_of "$state/slurmd.pid")"
for _ in $(seq 1 60); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 0.5; done
sinfo -h -o %t | grep -q idle || { echo "slurm node did not become idle" >&2; exit 1; }
