#!/usr/bin/env python3
"""Executes notebooks/explore-run.ipynb on one run directory, the way CI does.

    python3 scripts/run-notebook.py runs/demo

Writes the executed notebook to RUN/explore-run.ipynb and the plots to RUN/plots/, and exits
non-zero when a cell fails or a plot is missing. Needs nbclient, nbformat, ipykernel, numpy,
pandas, matplotlib and safetensors (scripts/requirements.txt).
"""

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

PLOTS = ["compliance-gap.png", "auroc-per-layer.png"]


def main(argv):
    if len(argv) != 1:
        print(__doc__)
        return 2
    run = Path(argv[0]).resolve()
    if not (run / "run.json").is_file():
        print(f"{run}: not a run directory (no run.json); run `tell demo` or `tell run` first")
        return 2
    here = Path(__file__).resolve().parent.parent / "notebooks"
    nb = nbformat.read(here / "explore-run.ipynb", as_version=4)
    os.environ["TELL_RUN"] = str(run)
    os.environ["TELL_PLOTS"] = str(run / "plots")
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(here)}}
    )
    try:
        client.execute()
    except CellExecutionError as e:
        # The cell's source and the exception's last line, without the ANSI-coloured traceback.
        print(f"a notebook cell failed: {e.ename}: {e.evalue}", file=sys.stderr)
        print(str(e).split("------------------")[1], file=sys.stderr)
        return 1
    nbformat.write(nb, run / "explore-run.ipynb")
    missing = [p for p in PLOTS if not (run / "plots" / p).is_file()]
    if missing:
        print(f"plots missing: {missing}")
        return 1
    print(f"executed -> {run / 'explore-run.ipynb'}; plots: {sorted(p.name for p in (run / 'plots').iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
