#!/usr/bin/env bash
# Installs the real peers that outpost's tests and demo run against:
# Prometheus 2.42 (receiver, agent mode, promtool), node_exporter 1.5 and
# VictoriaMetrics 1.79 with vmagent, all from Debian. Skips what is present.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "peers: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts these as services where systemd runs; the tests start their
# own copies on loopback ports, so nothing else is needed here.
echo "peers: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), node_exporter $(prometheus-node-exporter --version 2>&1 | head -1 | awk '{print $3}'), victoria-metrics present"
