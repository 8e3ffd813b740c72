"""Transformers: token-layer switches, attention heads as switch sites (timm's fused qkv, a
BERT-style block with separate q, k, v), trimming by heads, MACs of attention."""
import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.heads import head_layouts

timm = pytest.importorskip("timm")


def tiny_vit(depth=2, heads=4, dim=32, seed=0):
    torch.manual_seed(seed)
    net = timm.models.VisionTransformer(img_size=16, patch_size=4, in_chans=1, num_classes=5, embed_dim=dim,
                                        depth=depth, num_heads=heads, mlp_ratio=2.0, qkv_bias=True)
    net.input_shape = (1, 16, 16)
    return net.eval()


class SeparateQKV(nn.Module):
    """A BERT-style self-attention block: separate q, k, v, heads by reshape, then ``output.dense``."""

    def __init__(self, dim=24, heads=3):
        super().__init__()
        self.self = nn.Module()
        self.self.query, self.self.key, self.self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.self.num_attention_heads, self.self.attention_head_size = heads, dim // heads
        self.self.all_head_size = dim
        self.output = nn.Module()
        self.output.dense = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        d = self.self.attention_head_size
        q, k, v = (lin(x).view(B, N, -1, d).transpose(1, 2) for lin in (self.self.query, self.self.key, self.self.value))
        a = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, -1) @ v
        return x + self.output.dense(a.transpose(1, 2).reshape(B, N, -1))


class TokenNet(nn.Module):
    """Tokens (B, 6, 24) -> one separate-qkv attention block -> an MLP over tokens -> mean -> logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.attn = SeparateQKV()
        self.fc1, self.fc2, self.head = nn.Linear(24, 16), nn.Linear(16, 24), nn.Linear(24, 3)
        self.input_shape = (6, 24)

    def forward(self, x):
        x = self.attn(x)
        x = x + self.fc2(torch.relu(self.fc1(x)))
        return self.head(x.mean(1))


def particle_values(sizes, particles=3, seed=0):
    torch.manual_seed(seed)
    return {name: torch.distributions.Dirichlet(torch.ones(k)).sample((particles, 1)) for name, k in sizes.items()}


@pytest.mark.parametrize("form", ["s", "Ks", "bn"])
def test_token_and_head_switches_agree_with_one_pass_per_particle(form):
    net = tiny_vit()
    sites = ["blocks.0.attn:heads", "blocks.0.mlp.fc1", "blocks.1.attn:heads", "blocks.1.mlp.fc1"]
    switched = pdl.SwitchedNetwork(net, sites, pdl.SwitchConfig(form=form))
    assert switched.sizes == {"blocks.0.attn:heads": 4, "blocks.0.mlp.fc1": 64, "blocks.1.attn:heads": 4,
                              "blocks.1.mlp.fc1": 64}
    x = torch.randn(5, 1, 16, 16)
    s = particle_values(switched.sizes)
    together = switched.forward(x, s).reshape(3, 5, -1)
    for p in range(3):
        alone = switched.forward(x, {n: v[p, 0] for n, v in s.items()})
        torch.testing.assert_close(together[p], alone, rtol=1e-4, atol=1e-5)


def test_zero_head_switch_is_the_removed_head():
    net = tiny_vit(depth=1)
    switched = pdl.SwitchedNetwork(net, ["blocks.0.attn:heads"], pdl.SwitchConfig(form="Ks"))
    x = torch.randn(2, 1, 16, 16)
    s = torch.tensor([0.25, 0.0, 0.5, 0.25])  # Ks: factors 1, 0, 2, 1
    masked = switched.forward(x, {"blocks.0.attn:heads": s})
    proj = net.blocks[0].attn.proj
    factor = torch.tensor([1.0, 0.0, 2.0, 1.0]).repeat_interleave(8)
    with torch.no_grad():
        handle = proj.register_forward_pre_hook(lambda m, a: (a[0] * factor,))
        expected = net(x)
        handle.remove()
    torch.testing.assert_close(masked, expected)


def test_fused_qkv_heads_trim_to_the_masked_network():
    net = tiny_vit()
    keep = {"blocks.0.attn:heads": [0, 3], "blocks.1.attn:heads": [1, 2, 3], "blocks.0.mlp.fc1": list(range(0, 64, 2))}
    small = pdl.trim(net, keep)  # checks itself against the masked network
    attn = small.blocks[0].attn
    assert (attn.num_heads, attn.attn_dim, attn.qkv.out_features, attn.proj.in_features) == (2, 16, 48, 16)
    assert small.blocks[1].attn.num_heads == 3 and small.blocks[0].mlp.fc1.out_features == 32
    counts = {site: len(k) for site, k in keep.items()}
    assert pdl.count_macs(small) == pdl.mac_model(net, list(keep))(counts)
    assert pdl.count_params(small) == pdl.param_model(net, list(keep))(counts)
    # the masked network, zeroing the removed heads' outputs by hand, agrees too
    x = torch.randn(3, 1, 16, 16)
    masks = []
    for i, kept in ((0, [0, 3]), (1, [1, 2, 3])):
        m = torch.zeros(4, 8)
        m[kept] = 1
        masks.append(net.blocks[i].attn.proj.register_forward_pre_hook(lambda mod, a, m=m.flatten(): (a[0] * m,)))
    fc1_mask = torch.zeros(64)
    fc1_mask[::2] = 1
    masks.append(net.blocks[0].mlp.fc1.register_forward_hook(lambda mod, a, out: out * fc1_mask))
    with torch.no_grad():
        expected = net(x)
    for h in masks:
        h.remove()
    torch.testing.assert_close(small(x), expected, rtol=1e-4, atol=1e-5)


def test_attention_macs_are_counted():
    net = tiny_vit(depth=1)
    tokens, dim = 17, 32  # 16 patches + the class token
    linear = sum(m.in_features * m.out_features for m in net.modules() if isinstance(m, nn.Linear))
    linear_macs = tokens * (linear - dim * 5) + dim * 5  # the head reads one token
    patch = 16 * 32 * 16  # positions x out channels x (1 in channel x 4 x 4)
    assert pdl.count_macs(net) == linear_macs + patch + 2 * tokens * tokens * dim


def test_separate_qkv_heads_trim_and_refuse_a_split_head():
    net = TokenNet().eval()
    assert set(head_layouts(net)) == {"attn:heads"}
    groups = {g.name: g for g in pdl.channel_groups(net, torch.zeros(1, *net.input_shape))}
    assert "switch the heads instead" in groups["attn.self.query"].problem
    with pytest.raises(ValueError, match="switch the heads instead"):
        pdl.SwitchedNetwork(net, ["attn.self.value"])
    switched = pdl.SwitchedNetwork(net, ["attn:heads", "fc1"])
    x = torch.randn(4, 6, 24)
    s = particle_values(switched.sizes, particles=2)
    together = switched.forward(x, s).reshape(2, 4, -1)
    torch.testing.assert_close(together[1], switched.forward(x, {n: v[1, 0] for n, v in s.items()}))
    small = pdl.trim(net, {"attn:heads": [2], "fc1": [0, 5, 7]})
    assert small.attn.self.num_attention_heads == 1 and small.attn.self.all_head_size == 8
    assert small.attn.self.query.out_features == 8 and small.attn.output.dense.in_features == 8
    assert pdl.count_macs(small) == pdl.mac_model(net, ["attn:heads", "fc1"])({"attn:heads": 1, "fc1": 3})


def test_multihead_attention_is_refused_by_name():
    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 2)
            self.input_shape = (3, 8)

        def forward(self, x):
            return self.head(self.attn(x, x, x)[0].mean(1))

    with pytest.raises(ValueError, match="'attn' is an nn.MultiheadAttention"):
        pdl.SwitchedNetwork(MHA(), ["attn:heads"])


class GroupedQuery(nn.Module):
    """Grouped-query attention in Hugging Face's layout: 4 query heads share 2 key/value heads."""

    def __init__(self, dim=16, heads=4, kv_heads=2):
        super().__init__()
        torch.manual_seed(2)
        self.head_dim, self.num_key_value_groups = dim // heads, heads // kv_heads
        self.num_attention_heads, self.num_key_value_heads = heads, kv_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj, self.v_proj = nn.Linear(dim, kv_heads * self.head_dim), nn.Linear(dim, kv_heads * self.head_dim)
        self.o_proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 2)
        self.input_shape = (5, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, -1, self.head_dim).transpose(1, 2)
        k, v = (lin(x).view(B, N, -1, self.head_dim).transpose(1, 2) for lin in (self.k_proj, self.v_proj))
        k, v = (t.repeat_interleave(self.num_key_value_groups, dim=1) for t in (k, v))
        a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.head(self.o_proj(a.transpose(1, 2).reshape(B, N, -1)).mean(1))


def test_grouped_query_heads_keep_key_value_groups_whole():
    net = GroupedQuery().eval()
    switched = pdl.SwitchedNetwork(net, [":heads"])
    assert switched.sizes == {":heads": 2}  # one unit per key/value head and its 2 query heads
    small = pdl.trim(net, {":heads": [1]})  # checks itself against the masked network
    assert (small.q_proj.out_features, small.k_proj.out_features, small.o_proj.in_features) == (8, 4, 8)
    assert (small.num_attention_heads, small.num_key_value_heads) == (2, 1)
    assert pdl.count_macs(small) == pdl.mac_model(net, [":heads"])({":heads": 1})


def test_dirichlet_switch_on_token_features():
    from pyro import poutine

    h = torch.randn(2, 5, 6)  # (B, N, C)
    trace = poutine.trace(lambda h: pdl.dirichlet_switch("units", h, dim=-1)).get_trace(h)
    s = trace.nodes["units"]["value"]
    torch.testing.assert_close(trace.nodes["_RETURN"]["value"], h * s)  # the default form "s"
    draws = torch.distributions.Dirichlet(torch.ones(6)).sample((3, 1))  # 3 particles, folded particle-major
    folded = pdl.switch_ops.scale_channels(h, draws, dim=-1).reshape(3, 2, 5, 6)
    for p in range(3):
        torch.testing.assert_close(folded[p], h * draws[p, 0])


@pytest.mark.parametrize("estimator", ["mean", "mc"])
def test_both_estimators_fit_head_and_unit_switches(estimator):
    net = tiny_vit(depth=1)
    switched = pdl.SwitchedNetwork(net, ["blocks.0.attn:heads", "blocks.0.mlp.fc1"])
    gen = torch.Generator().manual_seed(0)
    data = pdl.FeatureDataset(torch.randn(48, 1, 16, 16, generator=gen), torch.randint(0, 5, (48,), generator=gen))
    fit = pdl.FitConfig(estimator=estimator, num_samples=3, epochs=2, batch_size=16)
    guide, _ = pdl.fit_switches(switched, data, fit, progress=False)
    for name, k in switched.sizes.items():
        phi = guide.phi(name)
        assert phi.shape == (k,) and torch.isfinite(phi).all() and not torch.allclose(phi, torch.full((k,), 10.0))


def test_token_layers_that_fold_patches_into_the_batch_take_one_switch_value():
    """MobileViT unfolds patches into the batch, (B * 4, N, C): one switch value (the mean
    estimator's) scales them all, several particles are refused by name."""
    net = timm.create_model("mobilevit_xxs", pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64)
    sites = ["stages.2.1.transformer.0.attn:heads", "stages.2.1.transformer.0.mlp.fc1"]
    switched = pdl.SwitchedNetwork(net, sites, example_inputs=x[:1])
    one = {n: torch.full((k,), 1.0 / k) for n, k in switched.sizes.items()}
    assert switched.forward(x, one).shape == (2, 1000)
    with pytest.raises(ValueError, match="stages.2.1.transformer.0.mlp.fc1.*do not lead with the batch"):
        switched.forward(x, {n: v.expand(3, 1, -1) for n, v in one.items()})
    small = pdl.trim(net, {sites[0]: [0], sites[1]: list(range(0, 128, 2))}, x[:1])  # checked against the masked one
    assert small.stages[2][1].transformer[0].attn.num_heads == 1
