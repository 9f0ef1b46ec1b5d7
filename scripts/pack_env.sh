#!/usr/bin/env bash
# Packs the Python environment into OUT.tar.gz for machines without network or setup rights:
#   scripts/pack_env.sh OUT.tar.gz
#   there: mkdir env && tar -xzf OUT.tar.gz -C env && source env/bin/activate
#          (a conda pack: then run env/bin/conda-unpack once)
# Inside an active conda environment ($CONDA_PREFIX) it uses conda-pack, otherwise venv-pack on $VENV
# (default .venv). Packers refuse (or silently break) editable installs, so this project goes in as an
# ordinary install built from the working tree; the environment itself is not modified.
#   COMPRESS_LEVEL=0..9  gzip level (default 4; 1 is much faster and ~10% larger)
#   ALLOW_CPU_TORCH=1    pack a CPU-only torch (refused otherwise: it would not use the cluster's GPUs)
#   PYTHON_PREFIX=DIR    venv only: where the target machine has the same Python (venv-pack
#                        --python-prefix); by default the venv's python links to this machine's
#                        interpreter path. conda-pack archives carry their own Python.
set -euo pipefail
usage="usage: $0 OUT.tar.gz   (env: VENV, COMPRESS_LEVEL, ALLOW_CPU_TORCH, PYTHON_PREFIX; see the header of this script)"
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "$usage"; exit 0; }
[[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }
[[ $1 == *.tar.gz ]] || { echo "$0: error: OUT must end in .tar.gz: $1" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1")
level=${COMPRESS_LEVEL:-4}

if [[ -n "${CONDA_PREFIX:-}" && -z "${VIRTUAL_ENV:-}" ]]; then
  packer=conda-pack prefix=$CONDA_PREFIX
else
  packer=venv-pack prefix=$(realpath -m "${VENV:-$repo/.venv}")
fi
py=$prefix/bin/python
[[ -x $py ]] || { echo "$0: error: no environment at $prefix (run make setup)" >&2; exit 2; }
"$py" -c "import ${packer/-/_}" 2>/dev/null || command -v "$packer" >/dev/null \
  || { echo "$0: error: $packer is not installed (pip install $packer)" >&2; exit 2; }
# A CPU-only torch is refused (ALLOW_CPU_TORCH=1 packs it); an interpreter outside the env is named.
allow_cpu=
[[ ${ALLOW_CPU_TORCH:-0} == 0 ]] || allow_cpu=--allow-cpu-torch
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$py" -m fairseq_ext.commands.pack_check --packer "$packer" \
  $allow_cpu ${PYTHON_PREFIX:+--python-prefix "$PYTHON_PREFIX"}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.pack_env.XXXXXX")  # next to OUT: the archive is GBs
trap 'rm -rf "$work"' EXIT

# 1. The project as a wheel, installed into a staging tree laid out like the environment.
site=$("$py" -c 'import os, sys, sysconfig; print(os.path.relpath(sysconfig.get_path("purelib"), sys.prefix))')
# Built from a copy of its sources (pyproject.toml packages fairseq_ext*): an in-tree build would leave
# build/ in the checkout, whose stale files later wheels would pick up.
mkdir "$work/src"
tar -C "$repo" --exclude=__pycache__ -cf - pyproject.toml README.md fairseq_ext | tar -C "$work/src" -xf -
"$py" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/*.whl)
dist=$(basename "$wheel")
dist=${dist%%-*}
"$py" -m pip install -q --disable-pip-version-check --no-deps --no-compile --target "$work/stage/$site" "$wheel"

# 2. The environment without the project's editable hooks (nor an older copy of the project), as tar.
excludes=()
for pattern in "__editable__*$dist*" "__pycache__/__editable__*$dist*" "$dist-*.dist-info/*" \
               $(sed 's,$,/*,' "$work/stage/$site/$dist"-*.dist-info/top_level.txt); do
  excludes+=(--exclude "$site/$pattern")
done
echo "pack_env: packing $prefix with $packer (a few minutes for GBs of torch)" >&2
if [[ $packer == venv-pack ]]; then
  "$py" -m venv_pack -p "$prefix" -o "$work/env.tar" --format tar --quiet "${excludes[@]}" \
    ${PYTHON_PREFIX:+--python-prefix "$PYTHON_PREFIX"}
else
  conda-pack -p "$prefix" -o "$work/env.tar" --format tar --quiet --ignore-editable-packages "${excludes[@]}"
fi

# 3. Add the staged project, compress.
tar -rf "$work/env.tar" -C "$work/stage" "$site"
gzip_cmd=gzip
command -v pigz >/dev/null && gzip_cmd=pigz
"$gzip_cmd" -"$level" -c "$work/env.tar" > "$work/out.tar.gz"
mv "$work/out.tar.gz" "$out"
echo "pack_env: wrote $out ($(du -h "$out" | cut -f1)); unpack: mkdir env && tar -xzf $out -C env" \
  "&& source env/bin/activate" >&2
