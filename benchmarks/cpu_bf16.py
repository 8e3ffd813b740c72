"""Does CPU bf16 autocast speed up training and the switch fit here? (``results/speed/cpu_bf16.{json,md}``)

On one CIFAR-10 network (ResNet-56 by default, random weights unless ``--pretrained``), times in
one process, fp32 against ``torch.autocast("cpu", dtype=torch.bfloat16)``:

- a training step (SGD, batch ``--batch-size``, channels_last, as the study's recipe);
- a switch-fit step (``mean``, one inner layer's switches, the network frozen);

each the median of ``--repeats`` steps after ``--warmup``, and the largest difference of the
logits (bf16 against fp32) on one batch. Whether bf16 keeps the accuracy matters only where
it is faster; the table says which.

    python benchmarks/cpu_bf16.py --pretrained runs/resnet56-cifar10-study/pretrained-73bd612209
"""
from __future__ import annotations

import argparse
import copy
import shlex
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.io import save_json, save_text
from pyro_dirichlet.models import build_model


def timed(step, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step(net, x, y, bf16: bool):
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def fit_step(net, site, x, y, bf16: bool):
    switched = pdl.SwitchedNetwork(net, [site], example_inputs=x[:1])
    guide = pdl.SwitchGuide(switched.sizes)
    pyro.clear_param_store()
    svi = pyro.infer.SVI(switched.model, guide, pyro.optim.Adam({"lr": 0.05}), loss=pdl.switch_elbo("mean"))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            svi.step(x, y, num_data=50_000)
    return step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56", choices=["resnet56", "vgg16", "wrn28_10"])
    ap.add_argument("--pretrained", default=None, help="a pretrained folder of --model (default: random weights)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", default="results/speed")
    a = ap.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/cpu_bf16.py", *(sys.argv[1:] if argv is None else argv)])
    torch.manual_seed(0)
    net = pdl.load_pruned(a.pretrained)[0] if a.pretrained else build_model(a.model).eval()
    x = torch.randn(a.batch_size, *net.input_shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch_size,))
    site = list(net.prunable_layers)[0]
    rows = {}
    for precision in ("fp32", "bf16"):
        bf16 = precision == "bf16"
        trained = copy.deepcopy(net).train().to(memory_format=torch.channels_last)
        rows[precision] = {
            "train_step_s": timed(train_step(trained, x, y, bf16), a.warmup, a.repeats),
            "fit_step_s": timed(fit_step(copy.deepcopy(net), site, x, y, bf16), a.warmup, a.repeats),
        }
        print(precision, rows[precision], flush=True)
    with torch.no_grad():
        ref = net(x).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x).float()
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0] if Path("/proc/cpuinfo").exists() else ""
    report = {"command": command, "model": a.model, "device": device_name(torch.device("cpu")),
              "cpu_has": {f: f in flags.split() for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")},
              "batch_size": a.batch_size, "warmup": a.warmup, "repeats": a.repeats, "rows": rows,
              "speedup": {k: rows["fp32"][k] / rows["bf16"][k] for k in rows["fp32"]},
              "logit_max_abs_diff": float((ref - low).abs().max()),
              "same_predictions_pct": float(100 * (ref.argmax(1) == low.argmax(1)).float().mean())}
    out = Path(a.results)
    save_json(report, out / "cpu_bf16.json")
    save_text(markdown(report), out / "cpu_bf16.md")
    print(markdown(report))
    return report


def markdown(r: dict) -> str:
    rows = r["rows"]
    lines = [f"CPU bf16 autocast against fp32, {r['model']}, batch {r['batch_size']}, {r['device']}; CPU flags "
             f"{r['cpu_has']}. Median seconds a step.", "",
             "| step | fp32 (s) | bf16 (s) | bf16 speed-up |", "|---|---|---|---|"]
    lines += [f"| {k.removesuffix('_s')} | {rows['fp32'][k]:.3f} | {rows['bf16'][k]:.3f} | {r['speedup'][k]:.2f}x |"
              for k in rows["fp32"]]
    lines += ["", f"Logits, bf16 against fp32: max |diff| {r['logit_max_abs_diff']:.3g}, same prediction on "
              f"{r['same_predictions_pct']:.1f}% of the batch.", "", f"Command: `{r['command']}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
