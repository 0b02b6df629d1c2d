#!/usr/bin/env bash
# CI for the verl integration, in a venv of its own (verl pins transformers<5.11, which must not
# downgrade the main test venv): torch 2.13.0 first (the CPU wheel, so that verl's dependencies do
# not pull another torch), then the given harmo_fast wheel with its [verl] extra, then
# integration_tests/verl against the installed package. Usage: .ci/verl.sh VENV_DIR WHEEL
# pytest's exit code 5 (no tests collected) is reported but tolerated.
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
  && pip install -q "torch==2.13.0" "${wheel}[verl]" pytest || exit 1
# from a directory outside the source tree, so that `import harmo_fast` is the installed wheel
tests=$(realpath integration_tests/verl)
(cd "$(mktemp -d)" && pytest -q -p no:cacheprovider "$tests")
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi
exit "$rc"
