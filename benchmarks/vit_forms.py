"""The ViT study's switch-form comparison (``benchmarks/vit.py --forms``): each form's posterior
means against Torch-Pruning's rankings at one shared architecture, and the head oracle."""
from __future__ import annotations

import itertools
import shlex
import sys
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import save_json, save_text
from vit_steps import after, dirichlet_scores, finetuned, sequential_scores, switch_config


def forms_report(a, net, sites, train, fit_data, fit, run, test, full, counts) -> dict:
    """Why the switch form matters on a residual transformer: each form's posterior means (and the
    first form's fitted site by site with the earlier sites pruned) against Torch-Pruning's Taylor
    and magnitude at one shared architecture, error right after pruning (and after the same
    fine-tuning for the first form, its sequential fit and the two baselines), the head oracle:
    ``vit_<dataset>_forms.{json,md}``."""
    rows, scores = [], {}
    for form in a.forms.split(","):
        switch = switch_config(a, form)
        _, scores[form], seconds = dirichlet_scores(net, sites, fit_data, fit, switch, run)
        share = f", r {switch.share:g}" if form in pdl.switch_config.SHARE_FORMS else ""
        rows.append({"method": f"dirichlet-{fit.estimator}, form {form}{share}, alpha0 {switch.alpha0:g}"
                               + ("" if fit.mode == "layerwise" else f", {fit.mode} fit")
                               + ("" if fit.estimator == "mean" else f", {fit.num_samples} particles"),
                     "fit_seconds": seconds,
                     "error_pruned_pct": pipeline.prune_to(net, scores[form], counts, None, test)[2]["error_pct"]})
    first = a.forms.split(",")[0]
    sequential = f"{first} sequential"
    scores[sequential], seconds = sequential_scores(net, sites, counts, fit_data, fit, switch_config(a, first), run)
    rows.append({"method": f"{rows[0]['method']}, each site fitted with the earlier ones pruned", "fit_seconds": seconds,
                 "error_pruned_pct": pipeline.prune_to(net, scores[sequential], counts, None, test)[2]["error_pct"]})
    for name in ("tp-taylor", "tp-magnitude", "random"):
        scores[name] = pdl.CRITERIA[name](net, sites, fit_data, seed=0)
        rows.append({"method": name,
                     "error_pruned_pct": pipeline.prune_to(net, scores[name], counts, None, test)[2]["error_pct"]})
    tuned = [first] + [None] * (len(a.forms.split(",")) - 1) + [sequential, "tp-taylor", "tp-magnitude"]
    for row, name in zip(rows, tuned):
        if name:  # the same fine-tuning for the first form, its sequential fit and Torch-Pruning's two
            row.update(finetuned(a, net, scores[name], counts, train, test, run)[0])
    pairs = [(form, "tp-taylor") for form in a.forms.split(",")] + [("tp-taylor", first)]
    for head, unit in pairs:  # which sites' ranking makes the difference: each form's heads, the first's units
        mixed = {site: scores[head if site.endswith(":heads") else unit][site] for site in sites}
        rows.append({"method": f"heads by {head}, MLP units by {unit}",
                     "error_pruned_pct": pipeline.prune_to(net, mixed, counts, None, test)[2]["error_pct"]})
    oracle = head_oracle(net, sites, counts, scores, train.subset(2000, seed=2))
    sizes = pdl.site_sizes(net, sites)
    best = {site: torch.zeros(sizes[site]).index_fill_(0, torch.tensor(subsets[0]), 1.0)
            for site, subsets in oracle["best"].items()}
    mixed = {site: best.get(site, scores[first][site]) for site in sites}
    rows.append({"method": f"heads by the best subset of each block (oracle), MLP units by {first}",
                 "error_pruned_pct": pipeline.prune_to(net, mixed, counts, None, test)[2]["error_pct"]})
    report = {"dataset": a.dataset, "full_error_pct": full["error_pct"], "counts": counts, "rows": rows,
              "head_oracle": oracle, "command": "python " + shlex.join(["benchmarks/vit.py", *sys.argv[1:]])}
    lines = [f"ViT on {a.dataset} ({full['error_pct']:.2f}% error), one shared architecture "
             f"({'-'.join(str(v) for v in counts.values())}: heads then MLP units per block), error right after "
             f"pruning and after {a.finetune_epochs} epochs of the same fine-tuning"
             + (f" (the mean over seeds {', '.join(map(str, a.finetune_seeds))}; each in brackets)"
                if len(a.finetune_seeds) > 1 else "") + ".", "",
             "| method | error before fine-tuning (%) | error after (%) | fit (s) |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['error_pruned_pct']:.2f} | " + (after(r) if "error_pct" in r else "—")
              + f" | {r.get('fit_seconds', 0):.0f} |" for r in rows]
    lines += ["", "Which heads each ranking keeps, against every way to keep as many (one block pruned alone, error "
              "on 2,000 training images): the rank of the ranking's subset per block (1 = the best subset).", "", "| ranking | " + " | ".join(oracle["best"]) + " |",
              "|---|" + "---|" * len(oracle["best"])]
    lines += [f"| {name} | " + " | ".join(str(r) for r in ranks) + " |" for name, ranks in oracle["ranks"].items()]
    lines += ["", "The same in each ranking's own context (every other site pruned by that ranking, error on the same "
              "images): the rank of its subset among the block's subsets.", "",
              "| ranking | " + " | ".join(oracle["best"]) + " |", "|---|" + "---|" * len(oracle["best"])]
    lines += [f"| {name} | " + " | ".join(str(r) for r in ranks) + " |"
              for name, ranks in oracle["ranks_in_context"].items()]
    lines += ["", f"Command: `{report['command']}`."]
    out = Path(a.results)
    save_json(report, out / f"vit_{a.dataset}_forms.json")
    save_text("\n".join(lines) + "\n", out / f"vit_{a.dataset}_forms.md")
    print("\n".join(lines))
    return report


def head_oracle(net, sites, counts, scores, data) -> dict:
    """Each block's heads pruned to ``counts`` in every possible way, error % on ``data``: alone (the
    rest of the network full) and in each ranking's context (every other site pruned by that
    ranking). ``{"errors": {site: {subset: error}}, "best": {site: [subset, ...] best first},
    "ranks": {ranking: [rank of its subset per block, 1 = best]}, "ranks_in_context": the same
    among the subsets in its own context}`` for the rankings ``scores``."""
    heads = [s for s in sites if s.endswith(":heads")]
    sizes = pdl.site_sizes(net, heads)

    def errors(site, ranking=None):
        out = {}
        for subset in itertools.combinations(range(sizes[site]), counts[site]):
            mask = torch.zeros(sizes[site]).index_fill_(0, torch.tensor(subset), 1.0)
            pruned = ({site: mask}, {site: counts[site]}) if ranking is None else ({**ranking, site: mask}, counts)
            out[subset] = pipeline.prune_to(net, *pruned, None, data)[2]["error_pct"]
        return out

    def rank(errs, s, site):
        return sorted(errs, key=errs.get).index(tuple(pdl.keep_indices(s, {site: counts[site]})[site])) + 1

    alone = {site: errors(site) for site in heads}
    best = {site: sorted(e, key=e.get) for site, e in alone.items()}
    return {"errors": {site: {"-".join(map(str, k)): v for k, v in e.items()} for site, e in alone.items()},
            "best": {site: [list(b) for b in order] for site, order in best.items()},
            "ranks": {name: [rank(alone[site], s, site) for site in heads] for name, s in scores.items()},
            "ranks_in_context": {name: [rank(errors(site, s), s, site) for site in heads] for name, s in scores.items()}}
