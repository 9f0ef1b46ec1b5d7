#!/usr/bin/env bash
# Binarizes GPT-2 BPE text (bpe_encode.py output) with fairseq-preprocess into a data-bin directory:
# BPE_DIR/data.{train,valid[,test]}.bpe -> DESTDIR/{train,valid,test}.bin/.idx + dict.txt.
# The two-step fairseq route; scripts/prepare_corpus.py gives the same bytes from raw text in one pass.
set -euo pipefail
usage="usage: $0 BPE_DIR DESTDIR [DICT]   (DICT default: \$GPT2_BPE_DIR/dict.txt; WORKERS default: nproc)"
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "$usage"; exit 0; }
[[ $# -ge 2 && $# -le 3 ]] || { echo "$usage" >&2; exit 2; }
bpe_dir=$1 destdir=$2 dict=${3:-${GPT2_BPE_DIR:-}/dict.txt}
[[ -f $dict ]] || { echo "$0: error: dictionary not found: $dict (pass DICT or set GPT2_BPE_DIR)" >&2; exit 2; }
for split in train valid; do
  [[ -f $bpe_dir/data.$split.bpe ]] || { echo "$0: error: missing $bpe_dir/data.$split.bpe" >&2; exit 2; }
done
test_pref=()
[[ -f $bpe_dir/data.test.bpe ]] && test_pref=(--testpref "$bpe_dir/data.test.bpe")
preprocess=$(command -v fairseq-preprocess || echo "$(dirname "$0")/../.venv/bin/fairseq-preprocess")
exec "$preprocess" --only-source --srcdict "$dict" \
  --trainpref "$bpe_dir/data.train.bpe" --validpref "$bpe_dir/data.valid.bpe" "${test_pref[@]}" \
  --destdir "$destdir" --workers "${WORKERS:-$(nproc)}"
