"""A study as data: two rankings with their allocations on a small LeNet-5, 2 paired fine-tuning
seeds, run cached and resumable, reported with the paired interval."""
import tempfile

import pyro_dirichlet as pdl
from pyro_dirichlet.inference.study import Row, Study, run_study
from pyro_dirichlet.inference.study_report import write_report
from pyro_dirichlet.models import build_model

work = tempfile.mkdtemp()
net = build_model("lenet5")
pdl.train(net, pdl.load_mnist(train=True).subset(2000), pdl.TrainConfig(epochs=1), progress=False)
sizes = pdl.site_sizes(net)
pdl.save_pruned(net, {"model": "lenet5", "input_shape": list(net.input_shape), "architecture": pdl.format_architecture(sizes),
                      "kept": {site: list(range(k)) for site, k in sizes.items()}}, f"{work}/pretrained")

study = Study(name="mine", dataset="mnist", pretrained=f"{work}/pretrained",
              rows=(Row("dirichlet", "likelihood", 4.0), Row("l1", "by-score", 4.0), Row("l1", "dirichlet/likelihood", 4.0)),
              seeds=(0, 1), finetune_epochs=(1,), fit=pdl.FitConfig(epochs=1), finetune=pdl.TrainConfig(epochs=1),
              score_subset=500, validation=500, train_subset=2000, test_subset=1000)
result = run_study(study, f"{work}/runs", progress=False)       # cached in <runs>/mine/study-<hash>/
summary = write_report(result, f"{work}/results", "examples/study.py")
for e, entry in summary["4x"].items():                           # E = 0: right after pruning
    d = entry["dirichlet_vs_best_baseline"]
    print(e, entry["best"]["dirichlet"], d["baseline"], f"{d['mean']:+.2f}", d["seeds"])
