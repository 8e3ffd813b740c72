"""Epochs planned to a wall-clock budget (inference/time_plan.py)."""
import time

import pytest

from pyro_dirichlet.inference import time_plan
from pyro_dirichlet.inference.time_plan import Speed, Work

SPEED = Speed(train_s_per_image=1e-4, fit_s_per_image=5e-5, latency_s=2.0)
WORK = Work(n_train=50_000, n_fit=50_000, pretrain_epochs=30, finetune_epochs=30, finetunes=4, fit_passes=75)


def test_the_estimate_adds_training_fitting_and_latency():
    # 50,000 x 1e-4 x (30 + 0.5 x 30 x 4) + 50,000 x 5e-5 x 75 + 5 x 2
    assert time_plan.estimate_seconds(SPEED, WORK, 30, 30) == pytest.approx(450 + 187.5 + 10)


def test_requested_epochs_that_fit_are_kept_and_others_scaled_into_the_budget():
    assert time_plan.plan_epochs(SPEED, WORK, budget_seconds=1000) == (30, 30)
    budget, spent = 500, 10
    usable = budget * (1 - time_plan.RESERVE) - time_plan.FIXED_SECONDS - spent  # 400 s
    pretrain, finetune = time_plan.plan_epochs(SPEED, WORK, budget, spent)
    assert (pretrain, finetune) == (13, 13)  # scale (400 - 197.5) / 450 = 0.45 of 30, rounded down
    assert time_plan.estimate_seconds(SPEED, WORK, pretrain, finetune) <= usable
    assert time_plan.estimate_seconds(SPEED, WORK, pretrain + 1, finetune + 1) > usable


def test_a_budget_below_one_epoch_each_is_refused_with_the_fix_and_the_measurements():
    with pytest.raises(time_plan.TimePlanError, match="--time-budget 200 s: .* need about .* fitting 188 s.* "
                       "larger budget, fewer --methods, or a smaller --train-subset, --fit-subset") as refused:
        time_plan.plan_epochs(SPEED, WORK, budget_seconds=200)
    record = refused.value.record
    assert record["speed"]["fit_s_per_image"] == SPEED.fit_s_per_image and record["one_epoch_each"]["fitting"] == 187.5
    assert record["needed_seconds"] > 200


def test_the_plan_is_reused_until_its_key_changes(tmp_path):
    calls = []

    def measure():
        calls.append(1)
        return SPEED

    key = {"model": "vgg16", "widths": (8, 8), "device": "H100", "budget_seconds": 500}  # a tuple, saved as a list
    started = time.perf_counter()
    first = time_plan.planned_epochs(tmp_path, key, measure, WORK, 500, started)
    again = time_plan.planned_epochs(tmp_path, key, measure, WORK, 500, started)
    assert first == again and len(calls) == 1 and first["pretrain_epochs"] == 14  # (410 - 197.5) / 450 of 30
    other = time_plan.planned_epochs(tmp_path, {**key, "budget_seconds": 1000}, measure, WORK, 1000, started)
    assert len(calls) == 2 and other["pretrain_epochs"] == 30


def test_a_pretraining_already_done_is_not_replanned():
    # 20 requested epochs already trained: only the fine-tuning is scaled, never a new (shorter) pretraining
    done = Work(**{**WORK.__dict__, "pretrain_epochs": 0})
    pretrain, finetune = time_plan.plan_epochs(SPEED, done, budget_seconds=400)
    usable = 400 * (1 - time_plan.RESERVE) - time_plan.FIXED_SECONDS  # 320 s; fixed part 197.5 s
    assert pretrain == 0 and finetune == 12  # (320 - 197.5) / (30 x 0.5 x 4 x 5 s) = 0.41 of 30, rounded down
    assert time_plan.estimate_seconds(SPEED, done, 0, finetune) <= usable < time_plan.estimate_seconds(
        SPEED, done, 0, finetune + 1)
