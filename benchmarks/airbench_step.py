"""The testbed's training step on this CPU: one SGD step (forward, backward, update) of airbench94
on a batch of 1024, fp32, contiguous and channels_last, median of ``--repeats``; and the 426
steps of the 9.9-epoch recipe at that rate (a floor: augmentation, Lookahead and evaluation add
to it). Run it alone: another process on the cores slows it.

    python benchmarks/airbench_step.py [--repeats 5]

Writes ``results/airbench94/step_speed.{json,md}`` (the CPU named in both).
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from airbench_pretrain import cpu_name  # noqa: E402

from pyro_dirichlet.airbench import AirbenchConfig  # noqa: E402
from pyro_dirichlet.io import save_json, save_text  # noqa: E402
from pyro_dirichlet.models import build_model  # noqa: E402

STEPS = 426  # ceil(9.9 * (45,000 // 1024))


def step_seconds(channels_last: bool, repeats: int, batch: int = AirbenchConfig.batch_size) -> list[float]:
    torch.manual_seed(0)
    net = build_model("airbench94")
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.85, nesterov=True)
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        loss = F.cross_entropy(net(x), y, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", default="results/airbench94")
    a = ap.parse_args(argv)
    rows = {layout: statistics.median(step_seconds(layout == "channels_last", a.repeats))
            for layout in ("contiguous", "channels_last")}
    result = {"cpu": cpu_name(), "batch_size": AirbenchConfig.batch_size, "repeats": a.repeats,
              "median_step_seconds": rows, "recipe_minutes_at_that_rate": {k: v * STEPS / 60 for k, v in rows.items()},
              "command": shlex.join(["python", "benchmarks/airbench_step.py", *(sys.argv[1:] if argv is None else argv)])}
    lines = [f"airbench94 training step, batch {result['batch_size']}, fp32, {result['cpu']}; median of {a.repeats}.", "",
             "| memory layout | seconds a step | 426 steps (minutes) |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v * STEPS / 60:.1f} |" for k, v in rows.items()]
    lines += ["", f"Command: `{result['command']}`."]
    save_json(result, Path(a.results) / "step_speed.json")
    save_text("\n".join(lines) + "\n", Path(a.results) / "step_speed.md")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
