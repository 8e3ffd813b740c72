"""The literature's figures this project compares with, in one place: the supplement's tables
(LeNet-5, VGG-16, ResNet-56, WRN-28-10), Torch-Pruning's DepGraph anchors and the synthetic
study's timing."""
from __future__ import annotations

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

PAPER_ARCH = {136_825: "5-8-45-15"}  # LeNet-5's budget that is the paper's architecture

# Supplement Table 1 (LeNet-5-Caffe on MNIST): method, architecture, error %, stated FLOPs.
# Checked rows (GD, SBP, BC-GNJ, BC-GHS): architecture, error and FLOPs as stated in the
# LeNet-5 table of Tang et al., "FLOPs as a direct optimization objective"; their FLOPs are
# the MACs plus one add per output bias element (``paper_flops``). RDP, FDOO, GL: architecture
# and error as recalled from the supplement, not checked here (stated FLOPs unknown: None).
PAPER_POINTS = [
    ("BC-GNJ", "8-13-88-13", 1.0, 290_000), ("BC-GHS", "5-10-76-16", 1.0, 158_000),
    ("RDP", "4-7-110-16", 1.0, None), ("FDOO", "2-7-112-478", 1.1, None), ("GL", "3-12-192-500", 1.0, None),
    ("GD", "7-13-208-16", 1.1, 254_000), ("SBP", "3-18-284-283", 0.9, 217_000),
    ("Dirichlet", "5-8-45-15", 1.1, 140_000),
]

LENET5_ROWS = [  # the LeNet-5 benchmark's rows: name, architecture, error %, stated FLOPs (MACs + bias adds)
    ("Dirichlet (paper, Table 1)", "5-8-45-15", "1.1", "140K"),
    ("BC-GHS (paper, Table 1)", "5-10-76-16", "1.0", "158K"),
]

# model -> the budget of its supplement table, an architecture to run too, and the paper's rows
# (method, error %, MACs, params). A parameter budget given as a fraction is of the full network's.
CIFAR10_TABLES = {
    "vgg16": {"budget_macs": 38_000_000, "budget_params": 840_000, "table": "supplement Table 2",
              "paper": [("Dirichlet (paper)", 8.48, "38M", "0.84M"), ("BC-GNJ", 8.3, "142M", "—"),
                        ("BC-GHS", 9.0, "122M", "—")]},
    "resnet56": {"budget_macs": 50_000_000, "arch": "6-11-16", "table": "supplement Table 4",  # 2.5x below 125.5M
                 "paper": [("DepGraph (Torch-Pruning), 93.53% -> 93.64%", 6.36, "2.57x fewer", "—"),
                           ("DepGraph (Torch-Pruning)", 6.54, "2.11x fewer", "—")]},
    "wrn28_10": {"budget_params": 0.4, "table": "supplement Table 3",  # at least 60% of the parameters removed
                 "paper": [("Dirichlet (paper)", 4.5, "—", "17.4M (52.2% removed)"),
                           ("L0-ARM", 4.4, "—", "49.9% removed")]},
}

PAPER_TIMING = {"mc_epoch_s": 14.317, "mean_epoch_s": 0.570, "machine": "6-core desktop CPU"}


def paper_points() -> list[dict]:
    """The supplement's Table 1 points, with MACs, paper FLOPs and params from this project's counter."""
    points = []
    for method, arch, error, stated_flops in PAPER_POINTS:
        small = build_model("lenet5", [int(w) for w in arch.split("-")])
        points.append({"method": method, "architecture": arch, "error_pct": error, "stated_flops": stated_flops,
                       **pdl.count_ops(small, small.input_shape), "params": pdl.count_params(small)})
    return points
