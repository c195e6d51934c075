import math

import pytest
import torch
from torch import nn

from training.config import ModelConfig, Pooling
from training.model import EncoderLayer, RegimeTransformer, SinusoidalPositions


def test_output_is_two_logits_per_window_for_any_batch_size() -> None:
    model = RegimeTransformer(ModelConfig()).eval()
    for batch in (1, 7):
        assert model(torch.randn(batch, 60, 6)).shape == (batch, 2)


def test_encoder_layer_computes_what_torch_transformer_encoder_layer_computes() -> None:
    torch.manual_seed(0)
    config = ModelConfig()
    ours = EncoderLayer(config).eval()
    reference = nn.TransformerEncoderLayer(
        d_model=64, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True
    ).eval()
    with torch.no_grad():
        reference.self_attn.in_proj_weight.copy_(ours.attention.qkv.weight)
        reference.self_attn.in_proj_bias.copy_(ours.attention.qkv.bias)
        reference.self_attn.out_proj.weight.copy_(ours.attention.out.weight)
        reference.self_attn.out_proj.bias.copy_(ours.attention.out.bias)
        reference.linear1.weight.copy_(ours.feed_forward[0].weight)
        reference.linear1.bias.copy_(ours.feed_forward[0].bias)
        reference.linear2.weight.copy_(ours.feed_forward[3].weight)
        reference.linear2.bias.copy_(ours.feed_forward[3].bias)
        for mine, theirs in ((ours.norm1, reference.norm1), (ours.norm2, reference.norm2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        x = torch.randn(5, 60, 64)
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-5)


def test_positional_code_is_the_sine_cosine_table() -> None:
    table = SinusoidalPositions(d_model=4, max_len=3).table
    # Frequencies 1 and 1/100 for d_model 4.
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],
            [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
            [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
        ]
    )
    torch.testing.assert_close(table, expected)


def test_normalisation_is_inside_the_model() -> None:
    torch.manual_seed(1)
    model = RegimeTransformer(ModelConfig(window=10)).eval()
    mean, std = torch.tensor([0.001, 0.0, 0.01, 0.01, 0.01, 20.0]), torch.full((6,), 0.5)
    standardised = torch.randn(3, 10, 6)
    expected = model(standardised)
    model.normaliser.set_statistics(mean, std)
    torch.testing.assert_close(model(standardised * std + mean), expected)


@pytest.mark.parametrize("pooling", [Pooling.LAST, Pooling.MEAN])
def test_windows_in_a_batch_do_not_influence_each_other(pooling: Pooling) -> None:
    torch.manual_seed(2)
    model = RegimeTransformer(ModelConfig(window=10, pooling=pooling)).eval()
    x = torch.randn(6, 10, 6)
    together = model(x)
    alone = torch.cat([model(x[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone)
    torch.testing.assert_close(model(x.flip(0)), together.flip(0))


def test_dropout_is_active_only_in_training_mode() -> None:
    torch.manual_seed(3)
    model = RegimeTransformer(ModelConfig(window=10))
    x = torch.randn(4, 10, 6)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_last_token_shortcut_gives_the_full_computations_last_row() -> None:
    torch.manual_seed(4)
    model = RegimeTransformer(ModelConfig(window=12)).eval()
    x = torch.randn(5, 12, 6)
    with torch.no_grad():
        hidden = model.positions(model.input_projection(model.normaliser(x)))
        for layer in model.layers:
            hidden = layer(hidden)  # every token, every layer
        full = model.head(hidden[:, -1, :])
        torch.testing.assert_close(model(x), full, atol=1e-6, rtol=1e-6)
