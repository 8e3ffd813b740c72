"""The testbed study's fine-tuning learning rate, chosen on the validation split: one row
(`l1` by score at 2x fewer MACs), one epoch, one seed, at each peak learning rate; the study
layer keys each by its recipe, so every one is its own cached study.

    python benchmarks/airbench_finetune_lr.py [--lrs 0.02,0.05,0.2]

Writes ``results/airbench94/finetune_lr.{json,md}``; the lowest validation error wins.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from airbench_study import FINETUNE, PRETRAINED

from pyro_dirichlet.inference.study import Row, Study, run_study
from pyro_dirichlet.io import save_json, save_text


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", default="0.02,0.05,0.2")
    ap.add_argument("--results", default="results/airbench94")
    a = ap.parse_args(argv)
    command = shlex.join(["python", "benchmarks/airbench_finetune_lr.py", *(sys.argv[1:] if argv is None else argv)])
    rows = []
    for lr in (float(v) for v in a.lrs.split(",")):
        study = Study(name="airbench94-finetune-lr", dataset="cifar10", pretrained=PRETRAINED,
                      rows=(Row("l1", "by-score", 2.0),), seeds=(0,), finetune_epochs=(1,),
                      finetune=dataclasses.replace(FINETUNE, lr=lr), score_subset=5000)
        r = run_study(study, progress=False)["rows"][0]
        rows.append({"lr": lr, "val_error": r["finetuned"][0]["val_error"], "test_error": r["finetuned"][0]["test_error"],
                     "before_val_error": r["val_error"], "seconds": r["finetuned"][0]["seconds"]})
    best = min(rows, key=lambda r: r["val_error"])
    save_json({"command": command, "row": "l1@by-score@2x", "rows": rows, "best_lr": best["lr"]},
              f"{a.results}/finetune_lr.json")
    lines = [f"# The testbed's fine-tuning learning rate (`{command}`)", "",
             "`l1` by score at 2x fewer MACs, one epoch, seed 0; chosen on the validation error.", "",
             "| peak lr | val error % | test error % | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['lr']:g} | {r['val_error']:.2f} | {r['test_error']:.2f} | {r['seconds']:.0f} |" for r in rows]
    save_text("\n".join(lines + ["", f"Chosen: {best['lr']:g}."]) + "\n", f"{a.results}/finetune_lr.md")
    print(f"best lr {best['lr']:g}")
    return best


if __name__ == "__main__":
    main()
