#!/usr/bin/env bash
# Container entrypoint: source ROS 2 and the workspace, make pip-installed GPU libraries findable, run the command.
set -eo pipefail

# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /ws/install/setup.bash

# TensorRT (tensorrt-cu13-libs) and the CUDA/cuDNN wheels torch brings install their .so files inside
# site-packages; onnxruntime's TensorRT provider loads libnvinfer.so.10 by name, so those directories
# must be on LD_LIBRARY_PATH. Empty on the CPU image.
gpu_lib_dirs=$(python3 - <<'PY'
import glob, os, site
dirs = []
for root in site.getsitepackages():
    dirs += glob.glob(os.path.join(root, "tensorrt_libs"))
    dirs += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")) + glob.glob(os.path.join(root, "nvidia", "cu*", "lib")))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)
if [ -n "$gpu_lib_dirs" ]; then
  export LD_LIBRARY_PATH="${gpu_lib_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

exec "$@"
