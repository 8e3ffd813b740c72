"""timm and transformers are optional: the library imports and works without them."""
import subprocess
import sys


def test_the_library_runs_without_timm_and_transformers():
    code = ("import sys; sys.modules['timm'] = None; sys.modules['transformers'] = None\n"
            "import torch, pyro_dirichlet as pdl, pyro_dirichlet.hf\n"
            "net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))\n"
            "print(pdl.trim(net, {'0': [1, 3]}, (4,))[0].out_features)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split()[-1] == "2", out.stderr[-2000:]
