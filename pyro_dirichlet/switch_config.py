"""One :class:`SwitchConfig`: how a Dirichlet switch is set up, with the defaults every entry
point uses (``SwitchedNetwork``, ``dirichlet_switch``, the pipeline and CLI, ``compare``,
``ablate``, the criteria, the CIFAR-10 study).

The defaults are the ablations' evidence:

- ``form="auto"``: the form of the network's kind (:mod:`.form_rule`): ``s`` on networks without
  normalisation (LeNet-5, ``results/archive/lenet5_ablation.md``: 3.4% right after pruning at 500K MACs
  against 13.4% with the paper's ``K s``) and in BatchNorm networks with residual sums (ResNet-56,
  ``results/archive/cifar10_resnet56_ablation.md``); ``rKs`` on plain BatchNorm networks (VGG-16) and
  LayerNorm transformers (ViT). A ``K s`` switch after a BatchNorm scales the trained gamma and
  beta where the loss is flat. A network's entry point resolves ``"auto"`` before it keys a run
  folder, so folders name the form that was used.
- ``alpha0=0.5``: sparsity-favouring (< 1); 0.05-2 moved the LeNet-5 results by about a seed's
  standard deviation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

FORMS = ("s", "Ks", "rKs", "cap", "gate", "norm", "bn")
AUTO = "auto"  # the form of the network's kind (form_rule.py)
SHARE_FORMS = ("rKs", "cap")  # the forms that read ``share``


def check_alpha0(alpha0: float) -> float:
    if not (isinstance(alpha0, (int, float)) and math.isfinite(alpha0) and alpha0 > 0):
        raise ValueError(f"alpha0 must be a positive number (the Dirichlet prior concentration), got {alpha0!r}")
    return float(alpha0)


@dataclass(frozen=True)
class SwitchConfig:
    """A switch ``s ~ Dir(alpha0 1_K)`` scaling channel k by ``switch_factor(s, form, steepness, share)_k``
    (:func:`.switch_ops.switch_factor`; ``"bn"``: :func:`.switch_ops.scale_channels`).

    ``form``: one of ``FORMS``, or ``"auto"`` (:func:`.form_rule.resolve_switch` picks it from
    the network; in a user's own Pyro model, which the library cannot inspect, ``"auto"`` is ``s``).
    ``steepness``: the ``gate`` form's c. ``share``: the ``rKs`` and ``cap`` forms' r, in (0, 1], the
    share of a site's channels the pruned network keeps. ``temperature``: fit a logit temperature
    ``T = exp(t)`` beside the switches (:class:`.SwitchedNetwork`).
    """

    alpha0: float = 0.5
    form: str = AUTO
    steepness: float = 3.0
    temperature: bool = False
    share: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "alpha0", check_alpha0(self.alpha0))
        if self.form not in (*FORMS, AUTO) or not (isinstance(self.steepness, (int, float)) and self.steepness > 0):
            raise ValueError(f"switch form must be one of {(*FORMS, AUTO)} with steepness > 0, got {self.form!r}, "
                             f"{self.steepness!r}")
        object.__setattr__(self, "steepness", float(self.steepness))
        if not (isinstance(self.share, (int, float)) and 0 < self.share <= 1):
            raise ValueError(f"share (the rKs and cap forms' kept share of channels) must be in (0, 1], got {self.share!r}")
        object.__setattr__(self, "share", float(self.share))
        object.__setattr__(self, "temperature", bool(self.temperature))

    def settings(self, compact: bool = False) -> dict:
        """The fields as the run folders' keys name them (``switch_form`` for ``form``);
        ``compact``: ``steepness`` and ``temperature`` only where they differ from the defaults
        (the comparison's folders, keyed before those fields existed there); ``share`` only for
        the forms that read it (``SHARE_FORMS``) (older folders were keyed without it)."""
        d = {"alpha0": self.alpha0, "switch_form": self.form, "steepness": self.steepness,
             "temperature": self.temperature, **({"share": self.share} if self.form in SHARE_FORMS else {})}
        if compact:
            default = asdict(SwitchConfig())
            d = {k: v for k, v in d.items() if k in ("alpha0", "switch_form") or v != default[k]}
        return d
