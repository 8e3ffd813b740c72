import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.simulate import simulate

SWITCH = pdl.SwitchConfig(alpha0=0.1, form="Ks")  # as tests/ddp_worker.py


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(worker), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def full_data_loss(problem, switched, guide):
    n = len(problem.data)
    return pdl.estimators.MeanSwitchELBO(max_plate_nesting=1).loss(
        switched.model, guide, problem.data.features, problem.data.labels, idx=torch.arange(n), num_data=n)


def test_ranks_end_with_the_same_parameters(two_ranks):
    a, b = two_ranks
    assert torch.equal(a["phi"], b["phi"])
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    assert a["history"] == [dict(h, seconds=a["history"][i]["seconds"]) for i, h in enumerate(b["history"])]
    assert not torch.equal(a["first_idx"], b["first_idx"])  # the ranks saw different shards


def test_a_users_own_model_fits_under_torchrun_like_the_switched_network(two_ranks):
    a, b = two_ranks
    assert torch.equal(a["own_phi"], b["own_phi"])
    assert [h["loss"] for h in a["own_history"]] == pytest.approx([h["loss"] for h in a["history"]], rel=1e-5)
    assert torch.allclose(a["own_phi"], a["phi"], rtol=1e-4)


def test_elbo_matches_a_single_process_run(two_ranks):
    problem = simulate(40, 8, num_data=400, seed=0)
    switched = pdl.SwitchedNetwork(problem.net, ["hidden0"], SWITCH, likelihood="bernoulli")
    # the mean of the ranks' minibatch losses is the single-process loss of the union batch (global N scaling)
    union = torch.cat([r["first_idx"] for r in two_ranks])
    single = pdl.estimators.MeanSwitchELBO(max_plate_nesting=1).loss(
        switched.model, pdl.SwitchGuide(switched.sizes), problem.data.features[union],
        problem.data.labels[union], idx=union, num_data=len(problem.data))
    assert sum(r["first_loss"] for r in two_ranks) / 2 == pytest.approx(single, rel=1e-6)
    # after fitting: the same objective value as one process with the union batch size
    guide, _ = pdl.fit_switches(switched, problem.data, pdl.FitConfig(estimator="mean", epochs=3, batch_size=40,
                                                                      anneal_epochs=0), progress=False)
    ddp_guide = pdl.SwitchGuide(switched.sizes)
    with torch.no_grad():
        ddp_guide.log_phi[0].copy_(two_ranks[0]["phi"].log())
    initial = full_data_loss(problem, switched, pdl.SwitchGuide(switched.sizes))
    fitted_single, fitted_ddp = full_data_loss(problem, switched, guide), full_data_loss(problem, switched, ddp_guide)
    assert fitted_ddp == pytest.approx(fitted_single, rel=0.01)
    assert initial - fitted_ddp > 10 * abs(fitted_ddp - fitted_single)  # both fits moved far, and to the same place
