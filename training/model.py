"""The Transformer regime classifier (a pure torch module: no files, no data, no loop).

Shapes: B = batch, T = window (60 days), F = features (6), C = d_model (64),
H = heads (4), D = C / H. The encoder layer is the standard post-norm layer
(same maths as ``torch.nn.TransformerEncoderLayer(batch_first=True)`` with ReLU;
a test checks it number for number), written out so every step is visible and
exports to plain ONNX operators.

Pooling: by default the LAST token (the window's last day, the day being
classified) feeds the head, so the final layer computes that token's row only
(its keys and values still cover the whole window); ``Pooling.MEAN`` averages
all tokens instead.
Attention is not masked: every day in the window is at or before its last day,
so no token sees the future.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from training.config import ModelConfig, Pooling


class FeatureNormaliser(nn.Module):
    """(x - mean) / std per feature, with the training statistics stored as buffers,
    so the exported graph takes raw features."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # [B, T, F]


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine position code added to each token (Vaswani et al., 2017)."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # [T, 1]
        frequency = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10_000.0) / d_model)
        )  # [C/2]
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("table", table)  # [T_max, C]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.size(1)]  # [B, T, C]


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention without a mask."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.width = config.d_model  # C
        self.head_width = config.d_model // config.n_heads  # D
        self.scale = 1.0 / math.sqrt(self.head_width)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)  # packed query, key, value
        self.out = nn.Linear(config.d_model, config.d_model)
        self.attention_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[B, T, C] -> [B, T, C], or [B, 1, C] for the last token's query only."""
        batch, length, _ = x.shape  # [B, T, C]
        width, head_width, heads = self.width, self.head_width, self.n_heads
        weight, bias = self.qkv.weight, self.qkv.bias  # packed rows: query, key, value
        queries = x[:, -1:, :] if last_only else x  # [B, Q, C] with Q = 1 or T
        n_queries = queries.shape[1]
        q = functional.linear(queries, weight[:width], bias[:width])  # [B, Q, C]
        k, v = functional.linear(x, weight[width:], bias[width:]).split(width, dim=2)  # [B, T, C]
        q = q.view(batch, n_queries, heads, head_width).transpose(1, 2)  # [B, H, Q, D]
        k = k.view(batch, length, heads, head_width).transpose(1, 2)  # [B, H, T, D]
        v = v.view(batch, length, heads, head_width).transpose(1, 2)  # [B, H, T, D]
        scores = (q @ k.transpose(-2, -1)) * self.scale  # [B, H, Q, T]
        weights = self.attention_dropout(functional.softmax(scores, dim=-1))
        y = weights @ v  # [B, H, Q, D]
        y = y.transpose(1, 2).contiguous().view(batch, n_queries, width)  # [B, Q, C]
        return self.out(y)


class EncoderLayer(nn.Module):
    """Post-norm block: x = norm1(x + attn(x)); x = norm2(x + ff(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),  # [B, T, d_ff]
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_ff, config.d_model),  # [B, T, C]
        )
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]; with ``last_only`` just the last token's row [B, 1, C]
        (keys and values still come from every token, so that row is unchanged)."""
        residual = x[:, -1:, :] if last_only else x
        x = self.norm1(residual + self.dropout1(self.attention(x, last_only)))  # [B, Q, C]
        return self.norm2(x + self.dropout2(self.feed_forward(x)))  # [B, Q, C]


class RegimeTransformer(nn.Module):
    """Raw feature windows [B, T, F] -> class logits [B, n_classes]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.normaliser = FeatureNormaliser(config.n_features)
        self.input_projection = nn.Linear(config.n_features, config.d_model)
        self.positions = SinusoidalPositions(config.d_model, config.window)
        self.input_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.head = nn.Linear(config.d_model, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normaliser(x)  # [B, T, F]
        x = self.input_dropout(self.positions(self.input_projection(x)))  # [B, T, C]
        last = self.config.pooling is Pooling.LAST
        for number, layer in enumerate(self.layers, start=1):
            # With last-token pooling the final layer needs only the last row: the
            # same numbers for about 40% less work.
            x = layer(x, last_only=last and number == len(self.layers))  # [B, T or 1, C]
        if last:
            pooled = x[:, -1, :]  # [B, C] the window's last day
        else:
            pooled = x.mean(dim=1)  # [B, C]
        return self.head(pooled)  # [B, n_classes]


class ProbabilityOutput(nn.Module):
    """Wraps the classifier for export: raw windows [B, T, F] -> probabilities [B, n_classes]."""

    def __init__(self, classifier: RegimeTransformer) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.softmax(self.classifier(x), dim=-1)
