import pytest
import torch

from pyro_dirichlet.latency import latency_ms
from pyro_dirichlet.models import build_model


def test_latency_is_a_positive_median_and_leaves_the_mode():
    net = build_model("lenet5").train()
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    ms = latency_ms(net, net.input_shape, batch_size=4, warmup=2, repeats=5)
    assert ms > 0 and calls == [4] * 7 and net.training
    with pytest.raises(ValueError, match="batch_size, repeats >= 1"):
        latency_ms(net, net.input_shape, batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_latency_on_cuda_uses_events():
    net = build_model("lenet5").cuda()
    assert latency_ms(net, net.input_shape, batch_size=256, warmup=3, repeats=5) > 0
