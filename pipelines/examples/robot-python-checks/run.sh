#!/usr/bin/env bash
# The quickstart with Python checks: starts robot-api v1 and v2 on loopback, replays the
# quickstart's recording of v1 traffic against v2 with `doppel run robot-python-checks.toml`
# (whose hints_py and intentions_py comparators run checks.py), writes report.html and
# verdicts.jsonl here (or in $OUT_DIR), prints the summary, and stops both servers.
# No root, nothing external but python3 (doppel puts doppel_compare, its helper, on PYTHONPATH).
# Exit code: doppel's (3 when a fail_if goal is missed).
#
#   pipelines/examples/robot-python-checks/run.sh      # uses build/bin/doppel and build/bin/robot-api
#   BUILD_DIR=build-x pipelines/examples/robot-python-checks/run.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PIPELINE=examples/robot-python-checks/robot-python-checks.toml exec bash "$here/../../quickstart/run.sh"
