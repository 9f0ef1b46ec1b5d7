"""scripts/pack_env.sh's check of the environment it is about to pack, run by that environment's python:
a CPU-only torch is refused (it would train on CPU on the cluster, silently) unless asked for, and an
interpreter that the unpacked environment will not find on another machine is named."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import run_cli
from fairseq_ext.errors import UserInputError

GUIDE = "docs/training.md#packing-the-environment-for-a-cluster"
# Oldest NVIDIA Linux driver for each CUDA major version (CUDA's minor-version compatibility)
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pack_env.sh", description=__doc__)
    parser.add_argument("--packer", choices=["venv-pack", "conda-pack"], required=True)
    parser.add_argument("--allow-cpu-torch", action="store_true", help="pack a CPU-only torch anyway")
    parser.add_argument("--python-prefix", help="venv-pack --python-prefix: where the nodes have the Python")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for line in torch_lines(args.allow_cpu_torch):
        print(f"pack_env: {line}", file=sys.stderr)
    if args.packer == "venv-pack" and not args.python_prefix:
        warning = interpreter_warning(Path(sys.prefix))
        if warning:
            print(f"pack_env: warning: {warning}", file=sys.stderr)
    return 0


def torch_lines(allow_cpu_torch: bool) -> list[str]:
    """What the packed torch needs on the nodes; a CPU-only build is an error unless allowed."""
    try:
        import torch
    except ImportError:
        raise UserInputError(f"no torch in {sys.prefix}: run make setup first") from None
    cuda = torch.version.cuda
    if cuda is None and getattr(torch.version, "hip", None) is None:
        if not allow_cpu_torch:
            raise UserInputError(
                f"{sys.prefix} has a CPU-only torch ({torch.__version__}): packed, it would train on CPU on "
                f"the cluster. Build the environment on a GPU node, or with PyPI's default torch wheels "
                f"(CUDA; see {GUIDE}), or pass ALLOW_CPU_TORCH=1 to pack it anyway")
        return [f"packing a CPU-only torch ({torch.__version__}) as asked (ALLOW_CPU_TORCH=1): it will not "
                "use the cluster's GPUs"]
    if cuda is None:
        return [f"torch {torch.__version__} (ROCm {torch.version.hip})"]
    driver = MIN_DRIVER.get(int(cuda.split(".")[0]))
    needs = f": the nodes need an NVIDIA driver >= {driver}" if driver else ""
    return [f"torch {torch.__version__} (CUDA {cuda}){needs}"]


def interpreter_warning(prefix: Path) -> str:
    """A venv's python is a link to the interpreter it was made from; packed, the link still points there."""
    target = Path(os.path.realpath(prefix / "bin" / "python"))
    if Path(os.path.realpath(prefix)) in target.parents:
        return ""
    where = " (a home directory, which the cluster's nodes usually do not have)" \
        if Path.home() in target.parents and Path.home() != Path("/") else ""
    return (f"{prefix}/bin/python links to {target}, outside the environment{where}: the unpacked "
            f"environment runs only where that path exists. Make the venv from a Python the nodes have at "
            f"the same path, set PYTHON_PREFIX=DIR to where they have Python 3.11, or pack a conda "
            f"environment (environment.yml + conda-pack: it carries its own Python); see {GUIDE}")


def cli() -> None:
    run_cli(main, prog="pack_env.sh")


if __name__ == "__main__":  # scripts/pack_env.sh
    cli()
