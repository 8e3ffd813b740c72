"""The CIFAR-10 study's measurements and report: latency, the ONNX check, supplement Figure 2's
feature maps, and the markdown of ``cifar10_<model>.json``."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.allocation import MIN_KEEP
from pyro_dirichlet.inference import paper
from pyro_dirichlet.latency import latency_ms


def latencies(net: nn.Module, cuda: bool) -> dict:
    """CPU (and GPU) milliseconds at batch 1 and 256 (:func:`latency_ms`; fewer repeats for CPU batch 256)."""
    shape = net.input_shape
    cpu = copy.deepcopy(net).cpu()
    out = {"cpu_b1_ms": latency_ms(cpu, shape, 1), "cpu_b256_ms": latency_ms(cpu, shape, 256, warmup=2, repeats=10)}
    if cuda:
        out |= {"gpu_b1_ms": latency_ms(net, shape, 1, warmup=20, repeats=200),
                "gpu_b256_ms": latency_ms(net, shape, 256, warmup=20, repeats=100)}
    return out


def onnx_check(net: nn.Module, path: Path) -> dict:
    """``pdl.export_network``'s ONNX file and check (onnxruntime's logits against PyTorch's)."""
    try:
        return pdl.export_network(net, path, net.input_shape, "onnx")
    except ImportError as e:
        return {"skipped": str(e)}


def first_layer_figure(net: nn.Module, site: str, means: torch.Tensor, image: torch.Tensor, path: Path,
                       top: int = 10) -> list[int]:
    """Feature maps of switch site ``site`` (where its switch acts: after its BatchNorm; then ReLU)
    for one image, every channel in a grid ordered by posterior mean, the ``top`` marked;
    returns their indices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    point = pdl.SwitchedNetwork(net, [site], example_inputs=image[None]).switch_points()[site][-1]
    maps = []
    with pdl.frozen.hooks([point.register_forward_hook(lambda m, i, o: maps.append(o))]), pdl.frozen.frozen(net), \
            torch.no_grad():
        net(image[None].to(next(net.parameters()).device))
    fmap = torch.relu(maps[0][0]).float().cpu()
    order = torch.argsort(means, descending=True).tolist()
    cols = 8
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2))
    for ax, (rank, k) in zip(axes.flat, enumerate(order)):
        ax.imshow(fmap[k], cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{k}", fontsize=7, color="red" if rank < top else "black")
        if rank < top:
            for spine in ax.spines.values():
                spine.set_edgecolor("red"), spine.set_linewidth(2)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.suptitle(f"{site}: feature maps by switch posterior mean (top {top} in red)", fontsize=9, y=1.02)
    pdl.io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png", bbox_inches="tight"))
    plt.close(fig)
    return order[:top]


def markdown(r: dict) -> str:
    b, cfg = r["baseline"], r["config"]
    table = paper.CIFAR10_TABLES.get(r["model"], {}).get("table", "")
    budget = f"{cfg['budget_macs']:,} MACs" + (f" and {cfg['budget_params']:,} parameters" if cfg["budget_params"]
                                               else "")
    lines = [f"{r['model']} on {r['dataset']}, {r['device']}; budget: {budget} ({table or 'given'}). Error after the "
             "same fine-tuning "
             f"({cfg['finetune']['epochs']} epochs"
             + (f", distilled from the full network with weight {cfg['distill']:g}, T 4" if cfg.get("distill") else "")
             + (", bf16 autocast on the CPU" if cfg.get("cpu_bf16") else "")
             + (f", per-layer floor {cfg['min_keep']:g} of each layer" if cfg.get("min_keep", MIN_KEEP) != MIN_KEEP
                else "")
             + "); the last epoch is reported.", "",
             "| method | architecture | error before fine-tuning (%) | error (%) | MACs | params | MAC ratio | "
             "params removed |", "|---|---|---|---|---|---|---|---|",
             f"| full network (ours) | — | — | {b['error_pct']:.2f} | {b['macs']:,} | {b['params']:,} | 1.0x | 0% |"]
    lines += [f"| {x['method']} | {x['architecture']} | {x['error_pruned_pct']:.2f} | {x['error_pct']:.2f} | "
              f"{x['macs']:,} | {x['params']:,} | {x['mac_ratio']:.1f}x | {100 - 100 * x['params'] / b['params']:.1f}% |"
              for x in r["runs"]]
    lines += [f"| {name} | — | — | {err} | {macs} | {params} | — | — |" for name, err, macs, params in r["paper"]]
    keys = list(b["latency"])
    lines += ["", "Latency (ms, median; speed-up against the full network):", "",
              "| network | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys),
              "| full | " + " | ".join(f"{b['latency'][k]:.3f}" for k in keys) + " |"]
    lines += [f"| {x['method']} | " + " | ".join(f"{x['latency'][k]:.3f} ({x['speedup'][k]:.1f}x)" for k in keys)
              + " |" for x in r["runs"]]
    if "onnx" in r:
        lines += ["", f"ONNX: {r['onnx']}"]
    if "figure2" in r:
        lines += [f"Figure 2: top 10 channels of {r['figure2']['layer']} by posterior mean: {r['figure2']['top10']}"]
    given = b.get("pretrained_from")
    pretraining = (f"the pretrained network was given: {given['source']} (sha256 {given['model_sha256'][:12]}, "
                   f"{b['pretrain_seconds']:.0f} s of pretraining where it was made)" if given else
                   f"pretraining {b['pretrain_seconds']:.0f} s")
    lines += ["", f"Command: `{r['command']}` ({r['wall_seconds'] / 60:.1f} min wall; {pretraining})."]
    return "\n".join(lines) + "\n"
