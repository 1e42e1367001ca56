#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the docker backend's tests (and for users on a machine
# without systemd): installs docker.io when the docker command or dockerd is missing, then
# starts dockerd in the background if no engine answers, and waits until it does.
# Needs root. Logs to /tmp/poe-bench-dockerd.log.
set -euo pipefail

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "docker engine $(docker version --format '{{.Server.Version}}') already runs"
  exit 0
fi
nohup dockerd >/tmp/poe-bench-dockerd.log 2>&1 &
for _ in $(seq 60); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "started docker engine $(docker version --format '{{.Server.Version}}') (log /tmp/poe-bench-dockerd.log)"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see /tmp/poe-bench-dockerd.log" >&2
tail -20 /tmp/poe-bench-dockerd.log >&2 || true
exit 1
