"""Hugging Face BERT and ViT built from a config (no download): every head and FFN site
switched, fitted a few steps, trimmed; trimmed == masked; the pruned model's config records
its per-layer shapes and head counts, and it saves and loads."""
import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import hf
from pyro_dirichlet.heads import head_layouts

transformers = pytest.importorskip("transformers")


def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    layers = [f"model.bert.encoder.layer.{i}" for i in range(2)]
    return model, (8, 32), "inputs_embeds", [f"{l}.attention:heads" for l in layers], [f"{l}.intermediate.dense" for l in layers]


def vit():
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64, num_labels=3)
    model = transformers.ViTForImageClassification(config).eval()
    layers = [f"model.vit.layers.{i}" for i in range(2)]
    return model, (1, 16, 16), "pixel_values", [f"{l}.attention:heads" for l in layers], [f"{l}.mlp.fc1" for l in layers]


def masked(net, keep, x):
    """``net(x)`` with the removed heads' outputs and FFN units zeroed by hooks."""
    layouts = head_layouts(net)
    handles = []
    for site, kept in keep.items():
        if site in layouts:
            proj = net.get_submodule(layouts[site].out_proj)
            mask = torch.zeros(layouts[site].size, proj.in_features // layouts[site].size)
            mask[kept] = 1
            handles.append(proj.register_forward_pre_hook(lambda m, a, mask=mask.flatten(): (a[0] * mask,)))
        else:
            mask = torch.zeros(net.get_submodule(site).out_features)
            mask[kept] = 1
            handles.append(net.get_submodule(site).register_forward_hook(lambda m, a, out, mask=mask: out * mask))
    with torch.no_grad():
        out = net(x)
    for h in handles:
        h.remove()
    return out


@pytest.mark.parametrize("build", [bert, vit])
def test_hf_heads_and_ffn_switched_fitted_trimmed_saved(build, tmp_path):
    model, shape, input_name, heads, ffn = build()
    net = hf.Logits(model, input_name, shape)
    assert list(head_layouts(net)) == heads
    sites = heads + ffn
    switched = pdl.SwitchedNetwork(net, sites)
    assert switched.sizes == {**{h: 4 for h in heads}, **{f: 64 for f in ffn}}
    gen = torch.Generator().manual_seed(0)
    data = pdl.FeatureDataset(torch.randn(64, *shape, generator=gen), torch.randint(0, 3, (64,), generator=gen))
    guide, _ = pdl.fit_switches(switched, data, pdl.FitConfig(epochs=1, batch_size=32), progress=False)
    means = {name: guide.phi(name) / guide.phi(name).sum() for name in guide.names}
    assert set(means) == set(sites)
    counts = {h: 2 for h in heads} | {f: 32 for f in ffn}
    keep = pdl.keep_indices(means, counts)
    small = pdl.trim(net, keep)  # checks itself against the masked network
    x = torch.randn(3, *shape, generator=gen)
    torch.testing.assert_close(small(x), masked(net, keep, x), rtol=1e-4, atol=1e-5)
    assert pdl.count_macs(small) == pdl.mac_model(net, sites)(counts) < pdl.count_macs(net)
    hf.save_pretrained(small.model, tmp_path)
    record = transformers.AutoConfig.from_pretrained(tmp_path).pruned_shapes
    assert all(v in ({"num_attention_heads": 2}, {"num_attention_heads": 2, "all_head_size": 16})
               for v in record["counts"].values()) and len(record["counts"]) == 2
    loaded = hf.from_pretrained(type(model), tmp_path)
    torch.testing.assert_close(hf.Logits(loaded, input_name)(x), small(x))
    with pytest.raises(Exception):  # Hugging Face's own loader refuses the other shapes (not silently wrong)
        type(model).from_pretrained(tmp_path)


def test_llama_grouped_query_heads_and_mlp_units_pruned_and_the_rmsnorm_stream_refused(tmp_path):
    """A tiny Llama (4 query heads sharing 2 key/value heads, RMSNorm): the channel groups are found
    (Torch-Pruning's grouping through repeat_kv used to run for ever), the residual stream is refused
    naming its RMSNorm (Torch-Pruning traces it as arithmetic, not as a module), and the heads (one
    unit per key/value group) and the gated MLP's units are switched, fitted, trimmed == masked,
    saved and loaded."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=16,
                                      num_labels=3, pad_token_id=0)
    model = transformers.LlamaForSequenceClassification(config).eval()
    net = hf.Logits(model, "inputs_embeds", (8, 32))
    layers = [f"model.model.layers.{i}" for i in range(2)]
    groups = {g.name: g for g in pdl.channel_groups(net, torch.randn(2, 8, 32))}
    assert "post_attention_layernorm" in groups[f"{layers[0]}.self_attn.o_proj"].problem
    heads, ffn = [f"{l}.self_attn:heads" for l in layers], [f"{l}.mlp.gate_proj" for l in layers]
    switched = pdl.SwitchedNetwork(net, heads + ffn)
    assert switched.sizes == {**{h: 2 for h in heads}, **{f: 64 for f in ffn}}
    gen = torch.Generator().manual_seed(0)
    data = pdl.FeatureDataset(torch.randn(32, 8, 32, generator=gen), torch.randint(0, 3, (32,), generator=gen))
    guide, _ = pdl.fit_switches(switched, data, pdl.FitConfig(epochs=1, batch_size=16), progress=False)
    means = {name: guide.phi(name) / guide.phi(name).sum() for name in guide.names}
    keep = pdl.keep_indices(means, {h: 1 for h in heads} | {f: 32 for f in ffn})
    small = pdl.trim(net, keep)  # checks itself against the masked network
    attn = small.model.model.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.o_proj.in_features) == (16, 8, 16)
    x = torch.randn(3, 8, 32, generator=gen)
    torch.testing.assert_close(small(x), masked(net, keep, x), rtol=1e-4, atol=1e-5)
    hf.save_pretrained(small.model, tmp_path)
    torch.testing.assert_close(hf.Logits(hf.from_pretrained(type(model), tmp_path), "inputs_embeds")(x), small(x))
