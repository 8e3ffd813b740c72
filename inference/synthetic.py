"""The synthetic posterior study (supplement section 1): ``mc`` against ``mean``.

For each size ``(d_x, d_h)`` a ground truth is simulated (:mod:`pyro_dirichlet.simulate`),
the true weights are frozen, and ``q(s) = Dir(phi)`` is fitted on ``hidden0`` with each
estimator through :class:`~pyro_dirichlet.SwitchedNetwork` and
:func:`~pyro_dirichlet.fit_switches` (prior ``Dir(alpha0 1)``, alpha0 = the simulation's
concentration 0.1; batch 100; Adam lr 0.05; no KL annealing). ArviZ summarises
``posterior_idata`` draws; the table compares the posterior means with the true switch
(Pearson correlation, RMSE) and gives the mean posterior sd over units, plus the ELBO of
the fitted q on all N examples (200 draws) as a check of the optimisation.

The speed benchmark times steady-state epochs (N = 4000, batch 100: 40 steps; the first
epoch is a warm-up; median of ``timing_epochs``) of both estimators at (1000, 500), the same
fits in plain PyTorch (:mod:`.plain_reference`) in the same run, and ``mc`` with the switch
applied to the ``(S, B, d_h)`` activations instead of the output layer's weight (``naive``).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.io import atomic_write, save_json, save_text
from pyro_dirichlet.simulate import SWITCHED_LAYER, SyntheticProblem, simulate

from . import paper
from .plain_reference import plain_fit



@dataclass
class StudyConfig:
    sizes: tuple[tuple[int, int], ...] = ((100, 20), (500, 200), (1000, 500))
    num_data: int = 4000
    concentration: float = 0.1  # true switch ~ Dir(concentration); also the prior alpha0
    epochs: int = 40
    mc_samples: int = 1000
    batch_size: int = 100
    lr: float = 0.05
    draws: int = 4000  # posterior draws for ArviZ
    timing_size: tuple[int, int] = (1000, 500)
    timing_epochs: int = 5  # timed epochs after one warm-up epoch
    naive_epochs: int = 2  # timed epochs of the naive mc after one warm-up epoch
    seed: int = 0
    device: str = "cpu"
    run_dir: str = "runs/synthetic"  # fit checkpoints: an interrupted study resumes
    timing: bool = True

    def fit_config(self, estimator: str, epochs: int | None = None) -> pdl.FitConfig:
        return pdl.FitConfig(estimator=estimator, num_samples=self.mc_samples, epochs=epochs or self.epochs,
                             batch_size=self.batch_size, lr=self.lr, anneal_epochs=0, seed=self.seed)


def make_problem(cfg: StudyConfig, d_x: int, d_h: int) -> SyntheticProblem:
    problem = simulate(d_x, d_h, cfg.num_data, cfg.concentration, seed=cfg.seed)
    return SyntheticProblem(problem.net.to(cfg.device), problem.true_switch, problem.data.to(cfg.device))


def switched(problem: SyntheticProblem, alpha0: float, fold_into_linear: bool | None = None) -> pdl.SwitchedNetwork:
    """The simulation's own switch (``K s``, :mod:`pyro_dirichlet.simulate`) with prior ``Dir(alpha0 1)``."""
    return pdl.SwitchedNetwork(problem.net, [SWITCHED_LAYER], pdl.SwitchConfig(alpha0=alpha0, form="Ks"),
                               likelihood="bernoulli", fold_into_linear=fold_into_linear)


def elbo_on_all_data(problem: SyntheticProblem, phi: torch.Tensor, alpha0: float, draws: int = 200) -> float:
    """``E_q[sum_i log p(y_i | x_i, s)] - KL(q || p)`` over all N examples (``draws`` samples)."""
    q = torch.distributions.Dirichlet(phi)
    prior = torch.distributions.Dirichlet(torch.full_like(phi, alpha0))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        s = q.sample((draws,))
        logits = switched(problem, alpha0).forward(problem.data.features, {SWITCHED_LAYER: s})
        log_lik = torch.distributions.Bernoulli(logits=logits.reshape(draws, -1)).log_prob(problem.data.labels)
    return (log_lik.sum(-1).mean() - torch.distributions.kl_divergence(q, prior)).item()


def compare(true_switch: torch.Tensor, summary) -> dict:
    """Posterior means/sd from an ``az.summary`` table against the true switch."""
    mean, sd = summary["mean"].to_numpy(), summary["sd"].to_numpy()
    truth = true_switch.double().numpy()
    return {"corr": float(np.corrcoef(mean, truth)[0, 1]), "rmse": float(np.sqrt(np.mean((mean - truth) ** 2))),
            "mean_sd": float(sd.mean()), "posterior_mean": mean.tolist(), "posterior_sd": sd.tolist()}


def study_size(cfg: StudyConfig, d_x: int, d_h: int, bar: tqdm) -> dict:
    problem = make_problem(cfg, d_x, d_h)
    row = {"d_x": d_x, "d_h": d_h, "true_switch": problem.true_switch.tolist()}
    for estimator in ("mc", "mean"):
        bar.set_postfix_str(f"{d_x}x{d_h} {estimator}")
        checkpoint = Path(cfg.run_dir) / f"{d_x}x{d_h}-{estimator}.ckpt"
        guide, history = pdl.fit_switches(switched(problem, cfg.concentration), problem.data,
                                          cfg.fit_config(estimator), checkpoint=checkpoint, progress=False)
        summary = pdl.summarize(pdl.posterior_idata(guide, num_draws=cfg.draws, seed=cfg.seed))
        row[estimator] = compare(problem.true_switch, summary) | {
            "elbo": elbo_on_all_data(problem, guide.phi(SWITCHED_LAYER).detach(), cfg.concentration),
            "fit_s": sum(h["seconds"] for h in history), "final_loss": history[-1]["loss"]}
        bar.update()
    return row


def time_epochs(cfg: StudyConfig, bar: tqdm) -> dict:
    """Median steady-state epoch seconds of each variant, measured in this one run."""
    d_x, d_h = cfg.timing_size
    problem = make_problem(cfg, d_x, d_h)
    alpha0, timing = cfg.concentration, {}

    def steady(history: list[dict]) -> float:
        return statistics.median(h["seconds"] for h in history[1:])

    for estimator in ("mean", "mc"):
        bar.set_postfix_str(f"timing {estimator}")
        epochs = 1 + cfg.timing_epochs
        _, history = pdl.fit_switches(switched(problem, alpha0), problem.data, cfg.fit_config(estimator, epochs),
                                      progress=False)
        timing[f"{estimator}_epoch_s"] = steady(history)
        bar.update()
        bar.set_postfix_str(f"timing {estimator} plain")
        _, history = plain_fit(problem.net, problem.data, estimator, cfg.mc_samples, alpha0, epochs,
                               cfg.batch_size, cfg.lr, seed=cfg.seed)
        timing[f"{estimator}_plain_epoch_s"] = steady(history)
        timing[f"{estimator}_pyro_over_plain"] = timing[f"{estimator}_epoch_s"] / timing[f"{estimator}_plain_epoch_s"]
        bar.update()
    if cfg.naive_epochs:
        bar.set_postfix_str("timing mc naive")
        _, history = pdl.fit_switches(switched(problem, alpha0, fold_into_linear=False), problem.data,
                                      cfg.fit_config("mc", 1 + cfg.naive_epochs), progress=False)
        timing["mc_naive_epoch_s"] = steady(history)
    bar.update()
    return timing | {"mc_samples": cfg.mc_samples, "d_x": d_x, "d_h": d_h, "steps_per_epoch":
                     -(-cfg.num_data // cfg.batch_size), "timed_epochs": cfg.timing_epochs,
                     "torch_threads": torch.get_num_threads()}


def plot_size(row: dict, path: Path) -> Path:
    """Supplement Figure 1: true switch (black), posterior mean +- 1 sd (red), mc | mean.
    Units are ordered by their true switch value, largest first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.asarray(row["true_switch"])
    order = np.argsort(-truth)
    units = np.arange(len(truth))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, estimator in zip(axes, ("mc", "mean")):
        res = row[estimator]
        mean, sd = np.asarray(res["posterior_mean"])[order], np.asarray(res["posterior_sd"])[order]
        ax.vlines(units, mean - sd, mean + sd, color="red", linewidth=1.5, alpha=0.7)
        ax.plot(units, mean, "o", color="red", markersize=3, label="posterior mean ± 1 sd")
        ax.plot(units, truth[order], "o", color="black", markersize=3, label="true switch")
        ax.set_title(f"{estimator}: corr {res['corr']:.3f}, RMSE {res['rmse']:.2g}, mean sd {res['mean_sd']:.2g}")
        ax.set_xlabel("hidden unit (sorted by true switch)")
    axes[0].set_ylabel("switch value")
    axes[0].legend(loc="upper right")
    fig.suptitle(f"d_x = {row['d_x']}, d_h = {row['d_h']}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def markdown(result: dict) -> str:
    lines = [f"Command: `{result['command']}` (device: {result['device']})", "",
             "| d_x | d_h | estimator | corr | RMSE | mean sd | ELBO (all N) | fit s |", "|---|---|---|---|---|---|---|---|"]
    for row in result["sizes"]:
        for estimator in ("mc", "mean"):
            r = row[estimator]
            lines.append(f"| {row['d_x']} | {row['d_h']} | {estimator} | {r['corr']:.3f} | {r['rmse']:.4f} | "
                         f"{r['mean_sd']:.2e} | {r['elbo']:.1f} | {r['fit_s']:.1f} |")
    t = result.get("timing")
    if t:
        lines += ["", f"Epoch seconds at (d_x, d_h) = ({t['d_x']}, {t['d_h']}), {t['steps_per_epoch']} steps, "
                  f"median of {t['timed_epochs']} after a warm-up epoch, {t['torch_threads']} threads:", "",
                  "| estimator | Pyro (this project) | plain PyTorch | Pyro / plain | paper (6-core CPU) |",
                  "|---|---|---|---|---|",
                  f"| mc (S = {t['mc_samples']}) | {t['mc_epoch_s']:.3f} | {t['mc_plain_epoch_s']:.3f} | "
                  f"{t['mc_pyro_over_plain']:.2f} | {paper.PAPER_TIMING['mc_epoch_s']} |",
                  f"| mean | {t['mean_epoch_s']:.3f} | {t['mean_plain_epoch_s']:.3f} | "
                  f"{t['mean_pyro_over_plain']:.2f} | {paper.PAPER_TIMING['mean_epoch_s']} |"]
        if "mc_naive_epoch_s" in t:
            lines.append(f"| mc, switch on the (S, B, d_h) activations | {t['mc_naive_epoch_s']:.3f} | | | |")
    return "\n".join(lines) + "\n"


def run_study(cfg: StudyConfig, results_dir: str | Path = "results", command: str = "", progress: bool = True) -> dict:
    """Run the study (and the timing unless ``cfg.timing`` is False); write
    ``synthetic.json``, ``synthetic.md`` and ``synthetic_<d_x>x<d_h>.png`` into ``results_dir``."""
    results_dir = Path(results_dir)
    device = pdl.resolve_device(cfg.device)
    cfg.device = str(device)
    total = 2 * len(cfg.sizes) + (5 if cfg.timing else 0)
    with tqdm(total=total, desc="synthetic", disable=not progress) as bar:
        sizes = [study_size(cfg, d_x, d_h, bar) for d_x, d_h in cfg.sizes]
        timing = time_epochs(cfg, bar) if cfg.timing else None
    name = device_name(device)
    result = {"device": name, "command": command, "config": asdict(cfg), "sizes": sizes, "timing": timing,
              "paper_timing": paper.PAPER_TIMING}
    for row in sizes:
        plot_size(row, results_dir / f"synthetic_{row['d_x']}x{row['d_h']}.png")
    save_json(result, results_dir / "synthetic.json")
    save_text(markdown(result), results_dir / "synthetic.md")
    return result
