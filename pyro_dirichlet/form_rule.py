"""The switch form the library picks for a network: ``SwitchConfig(form="auto")``, the default.

Under the ``s`` form a fit starts at the uniform switch with every switched channel scaled by
1/K; under ``rKs`` by r (the share the pruned site keeps, 0.5). Whether a 1/K start is harmless
depends on what lies between the switch and the logits, so the form follows the network's kind:

=====================  ==========================================  ======  ===========================
kind                   what the network has                        form    evidence (error %, lower is better)
=====================  ==========================================  ======  ===========================
``plain``              no normalisation layer                      ``s``   LeNet-5: ``s`` 2.4, ``rKs`` 30.1
``residual-batchnorm`` BatchNorm and residual sums                 ``s``   ResNet-56: ``s`` 57.56, ``rKs`` 60.74
``plain-batchnorm``    BatchNorm, no residual sum                  ``rKs`` VGG-16: ``rKs`` 15.87, ``s`` 28.36
``normalised``         LayerNorm / GroupNorm / RMSNorm             ``rKs`` ViT: ``rKs`` 51.88, ``s`` 54.73
=====================  ==========================================  ======  ===========================

Why: without normalisation the layers after a switch are positively homogeneous up to their
biases, so a 1/K switch mostly shrinks the logits and the fit still compares channels; in a
residual branch the identity path carries the stream's scale. An eval-mode BatchNorm on the only
path (``gamma (x - mu) / sigma + beta``) replaces a signal K times too small by its own offsets:
the network's function is lost and the fit buys the scale back by piling the switch's mass on a
few channels (VGG-16's ``s`` posterior is nearly one-hot on conv1-conv7, docs/results.md).
The errors: right after pruning (LeNet-5 at 500K MACs, ``results/archive/lenet5_ablation_rks.md``;
ResNet-56 at half of every inner layer, ``results/archive/cifar10_resnet56_ablation_cap.md``; the ViT at
half its MACs, ``results/archive/vit_cifar10.md``) or after 4 epochs of fine-tuning (VGG-16 at 38M MACs,
``results/vgg16/cifar10_vgg16_rks.md``).
A residual sum is an addition of two traced tensors (Torch-Pruning's graph), e.g. ``out + x``.
"""
from __future__ import annotations

from dataclasses import replace

import torch.nn as nn
from torch_pruning import ops

from .groups import renormalises, default_example, dependency_graph
from .switch_config import AUTO, SwitchConfig

FORM_OF_KIND = {"plain": "s", "residual-batchnorm": "s", "plain-batchnorm": "rKs", "normalised": "rKs"}


def has_residual_sum(net: nn.Module, example_inputs=None) -> bool:
    """Whether ``net``'s forward adds two tensors that both come from its input (a skip connection)."""
    graph = dependency_graph(net, default_example(net, example_inputs))
    return any(isinstance(m, ops._ElementWiseOp) and "Add" in str(m._grad_fn) and len(node.inputs) >= 2
               for m, node in graph.module2node.items())


def network_kind(net: nn.Module, example_inputs=None) -> str:
    """``net``'s kind, one of :data:`FORM_OF_KIND` (module docstring)."""
    modules = list(net.modules())
    if any(renormalises(m) for m in modules):
        return "normalised"
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules):
        return "plain"
    return "residual-batchnorm" if has_residual_sum(net, example_inputs) else "plain-batchnorm"


def resolve_switch(switch: SwitchConfig, net: nn.Module, example_inputs=None) -> SwitchConfig:
    """``switch`` with form ``"auto"`` replaced by the form of ``net``'s kind; any other form as it is."""
    if switch.form != AUTO:
        return switch
    return replace(switch, form=FORM_OF_KIND[network_kind(net, example_inputs)])
