"""Which model families prune (issue 41): each family at a small input with random weights (perturbed
BatchNorm statistics), its channel groups built, every prunable one switched with random scores,
pruned at half its MACs (or at its floor where half is below it) and trimmed (``trim`` checks itself
against the masked network); the MAC and parameter models checked against the trimmed network.
Each family runs in its own process, so its peak resident memory is its own.

    python benchmarks/model_families.py [--families test|all] [--results results/model_families]

``test``: the families of ``tests/test_model_families.py`` (the suite runs the same check);
``all`` adds the slow or large ones. Writes ``results.json`` and ``results.md``.
"""
from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

FAMILIES = {  # family: (library, constructor, keyword arguments, input pixels)
    "densenet121 (timm)": ("timm", "densenet121", {}, 32),
    "regnetx_002 (timm)": ("timm", "regnetx_002", {}, 32),
    "swin-t (timm)": ("timm", "swin_tiny_patch4_window7_224",
                      {"img_size": 64, "window_size": 4, "depths": (1, 1, 1, 1)}, 64),
    "levit_128s (timm)": ("timm", "levit_128s", {"img_size": 64}, 64),
    "pvt_v2_b0 (timm)": ("timm", "pvt_v2_b0", {}, 32),
    "resnet18 (torchvision)": ("torchvision", "resnet18", {}, 32),
    "mobilenet_v3_small (torchvision)": ("torchvision", "mobilenet_v3_small", {}, 32),
    "convnext_atto (timm)": ("timm", "convnext_atto", {}, 32),
    "resnext (torchvision)": ("torchvision", "resnext50_32x4d", {}, 32),
    "squeezenet (torchvision)": ("torchvision", "squeezenet1_1", {}, 32),
    "efficientnet_b0 (timm)": ("timm", "efficientnet_b0", {}, 32),
    "mobilenetv2 (timm)": ("timm", "mobilenetv2_050", {}, 32),
    "ghostnet (timm)": ("timm", "ghostnet_100", {}, 32),
    "dla34 (timm)": ("timm", "dla34", {}, 32),
    "vit_tiny (timm)": ("timm", "vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}, 32),
    "deit_tiny (timm)": ("timm", "deit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}, 32),
    "mlp-mixer (timm)": ("timm", "mixer_s16_224", {"img_size": 32}, 32),
    "poolformer_s12 (timm)": ("timm", "poolformer_s12", {}, 32),
    "mobilevit_xxs (timm)": ("timm", "mobilevit_xxs", {}, 64),
    "repvgg_a0 (timm)": ("timm", "repvgg_a0", {}, 32),
    "cspresnet50 (timm)": ("timm", "cspresnet50", {}, 32),
    "res2net50 (timm)": ("timm", "res2net50_14w_8s", {}, 32),
    "regnety_002 (timm)": ("timm", "regnety_002", {}, 32),
    "hrnet_w18_small (timm)": ("timm", "hrnet_w18_small", {}, 64),
    "lcnet_050 (timm)": ("timm", "lcnet_050", {}, 32),
    "fbnetc_100 (timm)": ("timm", "fbnetc_100", {}, 32),
    "mixnet_s (timm)": ("timm", "mixnet_s", {}, 32),
    "edgenext_xx_small (timm)": ("timm", "edgenext_xx_small", {}, 64),
    "dpn68 (timm)": ("timm", "dpn68", {}, 32),
    "googlenet (torchvision)": ("torchvision", "googlenet", {"aux_logits": False, "init_weights": False}, 32),
    "mnasnet (torchvision)": ("torchvision", "mnasnet0_5", {}, 32),
    "regnet_x_400mf (torchvision)": ("torchvision", "regnet_x_400mf", {}, 32),
    "mobilenet_v3_large (torchvision)": ("torchvision", "mobilenet_v3_large", {}, 32),
    "convnext_tiny (torchvision)": ("torchvision", "convnext_tiny", {}, 32),
    "shufflenet_v2 (torchvision)": ("torchvision", "shufflenet_v2_x0_5", {}, 32),
}
SLOW = {  # too slow or too large for the suite
    "efficientformerv2_s0 (timm, 224 px)": ("timm", "efficientformerv2_s0", {}, 224),
    "efficientformer_l1 (timm, 224 px)": ("timm", "efficientformer_l1", {}, 224),
    "rexnet_100 (timm)": ("timm", "rexnet_100", {}, 32),
    "swin_t (torchvision)": ("torchvision", "swin_t", {}, 32),
    "vgg11_bn (torchvision)": ("torchvision", "vgg11_bn", {}, 32),
}
REASONS = {  # a refusal's message -> its short name in the table
    "a normalisation over its channels": "normalisation over the channels",
    "its channels are attention heads'": "attention rows (switch the heads)",
    "its channels are concatenated": "concatenated",
    "is a grouped convolution": "grouped convolution",
    "have different widths": "tied layers of different widths",
    "in another order than channel-major": "not channel-major",
    "trimming it (channel 0 removed)": "trial trim failed",
    "pass through a GLU": "GLU",
    "whose parts multiply": "chunk-and-gate",
    "are split at offsets": "split into fixed parts",
    "did not finish within a bound": "grouping past its bound",
}


def build(library: str, name: str, kwargs: dict):
    """The network, random weights, BatchNorm statistics perturbed (seeded), in eval mode."""
    import torch
    import torch.nn as nn

    if library == "timm":
        import timm
        net = timm.create_model(name, pretrained=False, **kwargs)
    else:
        import torchvision
        net = getattr(torchvision.models, name)(weights=None, **kwargs)
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return net.eval()


def reason(problem: str) -> str:
    return next((short for key, short in REASONS.items() if key in problem), problem[:60])


def measure(family: str, library: str, name: str, kwargs: dict, pixels: int) -> dict:
    """One family's outcome (in this process): groups, sites, refusals and their reasons, MACs before
    and after, whether the MAC and parameter models are exact, seconds."""
    import warnings

    import torch

    import pyro_dirichlet as pdl
    from pyro_dirichlet.allocation import floor_counts

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    start = time.perf_counter()
    net, x = build(library, name, kwargs), torch.randn(1, 3, pixels, pixels)
    row = {"family": family, "pixels": pixels}
    try:
        groups = pdl.channel_groups(net, x)
    except ValueError as e:
        return {**row, "refused_whole": str(e)[:300], "seconds": round(time.perf_counter() - start, 1)}
    refused = [g for g in groups if g.problem]
    sites = [g.name for g in groups if g.problem is None and not g.is_output]
    row.update(groups=len(groups), sites=len(sites), refused=len(refused),
               reasons=sorted({reason(g.problem) for g in refused}))
    if sites:
        pruner = pdl.Pruner(net, sites, x)
        gen = torch.Generator().manual_seed(1)
        scores = {s: torch.rand(k, generator=gen) for s, k in pruner.sizes.items()}
        macs = pdl.mac_model(net, sites, x)
        budget = max(pruner.macs // 2, macs(floor_counts(pruner.sizes)))
        counts = pruner.counts(scores, budget)
        small = pruner.trim(scores, counts)
        row.update(macs=pruner.macs, budget=budget, pruned_macs=pdl.count_macs(small, x),
                   mac_model_exact=pdl.count_macs(small, x) == macs(counts),
                   param_model_exact=pdl.count_params(small) == pdl.param_model(net, sites, x)(counts))
    return {**row, "seconds": round(time.perf_counter() - start, 1)}


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Model families: pruned at half the MACs or refused before the fit", "",
             f"Command: `{command}`. Random weights, one process per family (peak: its maximum resident memory, "
             "the imports' ~1.2 GB included).", "",
             "| family | px | groups | prunable | refused | why refused | MACs | pruned MACs | models exact | s | "
             "peak GB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r or "refused_whole" in r:
            why = r.get("refused_whole") or r["error"]
            lines.append(f"| {r['family']} | {r.get('pixels', '')} | | | all | {why[:120]} | | | | "
                         f"{r.get('seconds', '')} | {r.get('peak_gb', '')} |")
            continue
        exact = "yes" if r.get("mac_model_exact") and r.get("param_model_exact") else \
            f"MACs {r.get('mac_model_exact')}, params {r.get('param_model_exact')}" if r["sites"] else ""
        lines.append(f"| {r['family']} | {r['pixels']} | {r['groups']} | {r['sites']} | {r['refused']} | "
                     f"{', '.join(r['reasons'])} | {r.get('macs', 0):,} | {r.get('pruned_macs', 0):,} | {exact} | "
                     f"{r['seconds']} | {r['peak_gb']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", choices=("test", "all"), default="test")
    ap.add_argument("--results", default="results/model_families")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one family in this process
    a = ap.parse_args(argv)
    if a.one:
        row = measure(a.one, *{**FAMILIES, **SLOW}[a.one])
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process's peak (Linux: KB)
        print(json.dumps({**row, "peak_gb": round(peak_kb / 2 ** 20, 2)}))
        return []
    rows = []
    for family in [*FAMILIES, *(SLOW if a.families == "all" else {})]:
        done = subprocess.run([sys.executable, __file__, "--one", family], capture_output=True, text=True)
        try:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            row = {"family": family, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        rows.append(row)
        print(f"{family}: {row}", flush=True)
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/model_families.py", *(sys.argv[1:] if argv is None else argv)])
    (out / "results.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    (out / "results.md").write_text(markdown(rows, command))
    return rows


if __name__ == "__main__":
    main()
