#!/usr/bin/env bash
# Developer build: compile the extension modules with CMake and drop them next to the Python
# sources, so `python -m pytest` from the repository root uses the working tree as it is.
# HARMO_CUDA=ON|OFF|AUTO (default OFF here: the CUDA build is slow and only CI needs it).
set -euo pipefail
cd "$(dirname "$0")/.."
build="build/inplace-${HARMO_CUDA:-OFF}"
exec 9>/tmp/harmo_fast_build.lock && flock 9  # helpers share one tree: one build at a time
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHARMO_CUDA="${HARMO_CUDA:-OFF}" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$build" -j 2
# Copy then rename: a process that already loaded the old module keeps a valid mapping.
for f in "$build"/_C*.so; do
  n="$(basename "$f")"
  cp "$f" "harmo_fast/.$n.tmp" && mv -f "harmo_fast/.$n.tmp" "harmo_fast/$n"
done
echo "built: $(ls harmo_fast/_C*.so | tr '\n' ' ')"
