#!/usr/bin/env bash
# Installs the external clients the ecosystem tests drive (used by .ci/run; developers
# can run it too): nats-server, curl, perf_analyzer, tritonclient, openai, the Python
# client. perf_analyzer is unpacked once into a cache and reused.
#
#   bash .ci/install-tools.sh        then   export PATH="$(bash .ci/install-tools.sh --bin):$PATH"
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SWITCHYARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-tools}"
BIN="$CACHE/bin"
if [ "${1:-}" = "--bin" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"

# --- Debian packages: nats-server (integration tests), libb64 (perf_analyzer), curl
need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ] || need+=(libb64-0d)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || echo "apt-get could not install ${need[*]}" >&2
fi

# --- Python: Triton's and OpenAI's clients, and ours (stubs generated at build time)
PIP="python3 -m pip"
$PIP install -q --disable-pip-version-check --root-user-action=ignore \
  'tritonclient[grpc,http]==2.73.0' 'openai==3.57.0' 'prometheus-client==0.21.1' numpy pillow pytest 2>&1 | grep -v '^\[notice\]' || true
$PIP install -q --disable-pip-version-check --root-user-action=ignore ./clients/python 2>&1 | grep -v '^\[notice\]' || true

# --- Kubernetes chart checks: helm (built once from its Go module; ~5 min cold) and
# kubernetes-validate (PyPI; carries the API schemas of Kubernetes 1.25-1.37)
$PIP install -q --disable-pip-version-check --root-user-action=ignore 'kubernetes-validate==1.37.0' 2>&1 | grep -v '^\[notice\]' || true
HELM_VERSION=v3.22.0
if [ ! -x "$CACHE/go-bin/helm" ] || ! "$CACHE/go-bin/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  if command -v go >/dev/null 2>&1; then
    t0=$SECONDS
    GOBIN="$CACHE/go-bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "tools: built helm $HELM_VERSION in $((SECONDS - t0)) s"
  else
    echo "go is not installed: cannot build helm" >&2
  fi
fi
[ -x "$CACHE/go-bin/helm" ] && ln -sf "$CACHE/go-bin/helm" "$BIN/helm"
command -v kubernetes-validate >/dev/null 2>&1 && ln -sf "$(command -v kubernetes-validate)" "$BIN/kubernetes-validate"

# --- Optional: buildah and mmdebstrap for the container image test (SWITCHYARD_IMAGE_TOOLS=1;
# the image test is skipped without them; infra/build-image.sh builds the image)
if [ "${SWITCHYARD_IMAGE_TOOLS:-0}" = "1" ] && ! command -v buildah >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -qq buildah mmdebstrap >/dev/null || echo "apt-get could not install buildah mmdebstrap" >&2
fi

# --- perf_analyzer: the binary inside PyPI's tritonclient 2.41.0 wheel, with libcudart
# from PyPI's nvidia-cuda-runtime-cu12 (no GPU is needed to run it)
PA_DIR="$CACHE/perf_analyzer-2.41.0"
if [ ! -x "$PA_DIR/perf_analyzer" ]; then
  tmp="$(mktemp -d)"
  $PIP download -q --disable-pip-version-check --no-deps -d "$tmp" tritonclient==2.41.0 'nvidia-cuda-runtime-cu12==12.9.79'
  mkdir -p "$PA_DIR/lib"
  python3 - "$tmp" "$PA_DIR" <<'PY'
import glob, os, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(os.path.join(tmp, "tritonclient-2.41.0-*.whl"))[0]) as z:
    with open(os.path.join(out, "perf_analyzer"), "wb") as f:
        f.write(z.read("tritonclient-2.41.0.data/data/bin/perf_analyzer"))
with zipfile.ZipFile(glob.glob(os.path.join(tmp, "nvidia_cuda_runtime_cu12-*.whl"))[0]) as z:
    with open(os.path.join(out, "lib", "libcudart.so.12"), "wb") as f:
        f.write(z.read("nvidia/cuda_runtime/lib/libcudart.so.12"))
PY
  chmod +x "$PA_DIR/perf_analyzer"
  rm -rf "$tmp"
fi
cat > "$BIN/perf_analyzer" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$PA_DIR/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$PA_DIR/perf_analyzer" "\$@"
SH
chmod +x "$BIN/perf_analyzer"
"$BIN/perf_analyzer" --version >/dev/null 2>&1 || "$BIN/perf_analyzer" --help >/dev/null 2>&1 || { echo "perf_analyzer does not start" >&2; exit 1; }
echo "tools: helm $("$BIN/helm" version --short 2>/dev/null), kubernetes-validate $(kubernetes-validate --version 2>/dev/null | tr -d '\n')"
echo "tools: nats-server $(nats-server --version 2>/dev/null | head -1), perf_analyzer at $BIN/perf_analyzer, $(python3 -c 'import tritonclient, openai, switchyard_client; print("tritonclient", __import__("importlib.metadata").metadata.version("tritonclient"), "openai", openai.__version__, "switchyard-client", switchyard_client.__version__)')"
