"""The public namespace: the user's verbs at the top level (exactly ``__all__``), the rest in named
submodules whose ``__all__`` names what they export."""
import importlib
import inspect

import pyro_dirichlet as pdl

SUBMODULES = ("switch_ops", "switches", "estimators", "allocation", "allocations", "data", "simulate", "groups",
              "sites", "likelihoods")


def test_the_top_level_is_its_all():
    public = {n for n, v in vars(pdl).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == set(pdl.__all__) - {"hf"}, sorted(public ^ (set(pdl.__all__) - {"hf"}))


def test_each_submodule_exports_what_its_all_names():
    for name in SUBMODULES:
        module = importlib.import_module(f"pyro_dirichlet.{name}")
        assert module.__all__, name
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"pyro_dirichlet.{name}.__all__ names {missing}, which it does not define"
