#!/bin/sh
# The image's entry point: the first argument picks the role. exec, so that the service
# is PID 1's only process and receives SIGTERM itself (it drains, then exits 0).
set -e
role="${1:-gateway}"
[ "$#" -gt 0 ] && shift
case "$role" in
  # The flags of local clusters (DEFAULT_SERVICE_NODE_FLAGS, libs/cluster/src/processes.ts, which says why).
  gateway|scheduler|worker) exec node --single-threaded-gc --heap-growing-percent=600 "/app/services/$role/dist/main.mjs" "$@" ;;
  switchyard|cli) exec node "/app/tools/cli/dist/main.mjs" "$@" ;;
  *) echo "unknown role '$role': use gateway, scheduler, worker or switchyard ARGS…" >&2; exit 64 ;;
esac
