#!/usr/bin/env bash
# Installs what is missing, builds, and runs the lab: sluice-dataplane on
# veth pairs in namespaces, a stream pair programmed with sluicectl, RTP both
# ways between kernel sockets, then the live flows and counters. Cleans up.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
exec lab/lab.sh demo
