#!/usr/bin/env bash
# The TRL integration tests (integration_tests/trl) against the real trl, in a venv of their own:
# trl brings transformers 5.x, accelerate and datasets, which must not change the main test venv.
#
#   .ci/trl.sh VENV_DIR WHEEL [TRL_SPEC...]
#
# Creates VENV_DIR, installs torch==2.13.0 (the CPU wheel) first and keeps it pinned, then WHEEL
# with its [trl] extra (trl==1.16.0), or, when TRL_SPECs are given (e.g. "trl==1.13.0"), WHEEL and
# those specs instead of the extra. Runs pytest on integration_tests/trl against the installed
# wheel; pytest's exit 5 (no tests collected) is tolerated.
set -uo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 VENV_DIR WHEEL [TRL_SPEC...]" >&2
  exit 2
fi
venv=$1
wheel=$(realpath "$2")
shift 2
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
  packages=("$wheel" "$@")
else
  packages=("${wheel}[trl]")
fi
rm -rf "$venv"
python3 -m venv "$venv" && . "$venv/bin/activate" || exit 1
# requests: trl 1.13 imports it without declaring it
pip install -q torch==2.13.0 && pip install -q "torch==2.13.0" "${packages[@]}" pytest requests || exit 1
# the tests must import the installed wheel, not the source tree: the check runs outside the
# checkout, and plain `pytest` (not `python -m pytest`) keeps the working directory off sys.path
(cd / && python -c "import harmo_fast, trl; print('harmo_fast from', harmo_fast.__file__, '| trl', trl.__version__)") || exit 1
pytest -q -p no:cacheprovider integration_tests/trl
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi
exit "$rc"
