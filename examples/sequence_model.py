"""Pruning a sequence model with its own loss: a small Conformer-style network over 1-D frames
(Conv1d, a GLU gate, a depthwise conv, a LayerNorm residual stream) trained on a synthetic
per-frame multi-label task with binary cross-entropy, pruned to half its prunable MACs by the
Dirichlet posterior and by three baselines at the same counts, each fine-tuned with the same loss.

    python examples/sequence_model.py

Every step is a library call: ``likelihood="bernoulli"`` explains per-frame 0/1 targets
``(N, T, L)`` in the switch fit and the data criteria, ``pdl.nll("bernoulli")`` is ``train``'s loss
and ``evaluate`` takes the frame error as its metric. A GLU over one conv's channels pairs channel k
with k + C, which the library refuses (naming the GLU); written as a value conv and a gate conv, the
same function prunes exactly. Prints the prunable sites; the full network's frame error, Dirichlet's
counts and whether they fit the budget; then one line per ranking: frame error before and after
fine-tuning, and True (``trim`` raises unless the trimmed network equals the masked one).
"""
import torch
import torch.nn as nn

import pyro_dirichlet as pdl

FRAMES, FEATURES, LABELS, WIDTH = 48, 8, 6, 32


class ConvModule(nn.Module):
    """Conformer's convolution module on ``(B, C, T)``: LayerNorm, a gated pointwise conv (value and
    gate convs: ``nn.GLU`` over one conv of 2C channels, split in two), depthwise conv, BatchNorm,
    SiLU, pointwise conv, added to the stream."""

    def __init__(self, width: int, kernel: int = 7):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.value, self.gate = nn.Conv1d(width, width, 1), nn.Conv1d(width, width, 1)
        self.depthwise = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.bn, self.out = nn.BatchNorm1d(width), nn.Conv1d(width, width, 1)

    def forward(self, x):
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        h = self.value(h) * torch.sigmoid(self.gate(h))
        return x + self.out(nn.functional.silu(self.bn(self.depthwise(h))))


class FeedForward(nn.Module):
    """Half-step feed-forward module on ``(B, T, C)``: LayerNorm, Linear to 2C, SiLU, Linear back."""

    def __init__(self, width: int):
        super().__init__()
        self.norm, self.up, self.down = nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x):
        return x + 0.5 * self.down(nn.functional.silu(self.up(self.norm(x))))


class Conformer(nn.Module):
    """``(B, FEATURES, T)`` frames -> per-frame logits ``(B, T, LABELS)``."""

    def __init__(self, width: int = WIDTH, blocks: int = 2):
        super().__init__()
        self.stem = nn.Conv1d(FEATURES, width, 3, padding=1)
        self.convs = nn.ModuleList(ConvModule(width) for _ in range(blocks))
        self.ffs = nn.ModuleList(FeedForward(width) for _ in range(blocks))
        self.head = nn.Linear(width, LABELS)

    def forward(self, x):
        h = self.stem(x)
        for conv, ff in zip(self.convs, self.ffs):
            h = ff(conv(h).transpose(1, 2)).transpose(1, 2)
        return self.head(h.transpose(1, 2))


def per_frame_task(n: int, seed: int) -> pdl.FeatureDataset:
    """Frames of noise; label j of frame t is on where a fixed smoothing of the inputs is positive."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, FRAMES, generator=g)
    teacher = torch.randn(LABELS, FEATURES, 9, generator=torch.Generator().manual_seed(1234))
    y = (nn.functional.conv1d(x, teacher, padding=4) > 0).float().transpose(1, 2)  # (n, T, L)
    return pdl.FeatureDataset(x, y)


def frame_error(outputs, y):
    """``(B,)``: percent of each example's frame labels predicted wrong."""
    return 100.0 * ((outputs > 0).float() != y).float().mean((1, 2))


def main(train_n: int = 512, test_n: int = 256, epochs: int = 12, finetune_epochs: int = 2) -> None:
    torch.manual_seed(0)
    train, test = per_frame_task(train_n, 0), per_frame_task(test_n, 1)
    loss = pdl.nll("bernoulli")  # mean over sequences of the BCE summed over frames and labels
    net = Conformer()
    pdl.train(net, train, pdl.TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, optimizer="adam", weight_decay=0.0),
              progress=False, loss=loss)
    example = train.features[:2]
    groups = pdl.channel_groups(net, example)
    sites = [g.name for g in groups if g.problem is None and not g.is_output]
    print("sites", " ".join(sites))
    pruner = pdl.Pruner(net, sites, example)
    scores = {name: pdl.CRITERIA[name](net, sites, train, likelihood="bernoulli")
              for name in ("dirichlet", "l1", "tp-magnitude", "random")}
    counts = pruner.counts(scores["dirichlet"], pruner.macs // 2)  # Dirichlet's counts for every ranking
    print(f"full {pdl.evaluate(net, test, metric=frame_error):.2f}% {pdl.format_architecture(counts)} "
          f"{pdl.count_macs(pruner.trim(scores['dirichlet'], counts), example) <= pruner.macs // 2}")
    for name, ranking in scores.items():
        small = pruner.trim(ranking, counts)  # raises unless it computes what the masked network does
        before = pdl.evaluate(small, test, metric=frame_error)
        pdl.train(small, train, pdl.TrainConfig(epochs=finetune_epochs, batch_size=32, lr=1e-3, optimizer="adam",
                                                weight_decay=0.0), progress=False, loss=loss)
        print(f"{name} {before:.2f}% {pdl.evaluate(small, test, metric=frame_error):.2f}% True")


if __name__ == "__main__":
    main()
