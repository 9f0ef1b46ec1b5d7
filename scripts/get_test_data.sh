#!/usr/bin/env bash
# Fetches the test data (../shared's layout) from its official homes into DEST, each file verified.
# DEST defaults to ~/.cache/roberta-squad2/test-data; ROBERTA_TEST_DATA_MIRROR=BASE fetches
# https://HOST/PATH from BASE/HOST/PATH instead.
set -euo pipefail
usage="usage: $0 [DEST]   (default: \${XDG_CACHE_HOME:-~/.cache}/roberta-squad2/test-data)"
[[ $# -le 1 ]] || { echo "$usage"; exit 2; }
[[ ${1:-} != -h && ${1:-} != --help ]] || { echo "$usage"; exit 0; }
repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m tests.testdata fetch "$@"
