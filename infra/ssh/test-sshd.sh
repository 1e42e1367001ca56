#!/usr/bin/env bash
# A real OpenSSH server for the ssh backend's tests, bound to 127.0.0.1 only, on a non-default
# port, with a generated host key and a generated client key authorised for the calling user
# (root in CI). Nothing outside DIR is touched: its own sshd_config, host key, authorized_keys
# and PID file. The hosts file for the tests is written to DIR/hosts.yaml.
#
#   infra/ssh/test-sshd.sh start [DIR] [PORT]   (defaults /tmp/poe-bench-sshd, 2222)
#   infra/ssh/test-sshd.sh stop  [DIR]
#
# Needs openssh-server (sshd) and ssh-keygen. Idempotent: start does nothing if its sshd runs.
set -euo pipefail

cmd="${1:-start}"
dir="${2:-${POE_BENCH_SSHD_DIR:-/tmp/poe-bench-sshd}}"
port="${3:-${POE_BENCH_SSHD_PORT:-2222}}"
sshd="$(command -v sshd || echo /usr/sbin/sshd)"

running() { [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; }

case "$cmd" in
start)
  if running; then echo "test sshd already runs (pid $(cat "$dir/sshd.pid")) on 127.0.0.1:$(cat "$dir/port")"; exit 0; fi
  [ -x "$sshd" ] || { echo "sshd not found: install openssh-server" >&2; exit 1; }
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C poe-bench-test-host -f "$dir/host_ed25519"
  [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C poe-bench-test-client -f "$dir/client_ed25519"
  cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
  chmod 600 "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
LogLevel ERROR
EOF
  "$sshd" -t -f "$dir/sshd_config"
  "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"
  echo "$port" >"$dir/port"
  cat >"$dir/hosts.yaml" <<EOF
# The test sshd on this machine (infra/ssh/test-sshd.sh): one replica host and one client host.
defaults:
  user: $(id -un)
  port: $port
  key: $dir/client_ed25519
hosts:
  - { host: 127.0.0.1, role: replica }
  - { host: 127.0.0.1, role: client }
EOF
  for _ in $(seq 50); do running && break; sleep 0.1; done
  running || { echo "test sshd did not start; see $dir/sshd.log" >&2; exit 1; }
  echo "test sshd runs (pid $(cat "$dir/sshd.pid")) on 127.0.0.1:$port; hosts file $dir/hosts.yaml"
  ;;
stop)
  if running; then kill "$(cat "$dir/sshd.pid")"; fi
  rm -f "$dir/sshd.pid"
  ;;
*)
  echo "usage: $0 start|stop [DIR] [PORT]" >&2
  exit 2
  ;;
esac
