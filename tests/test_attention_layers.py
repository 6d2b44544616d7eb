"""nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerEncoder: torch's
parameter names and counts, outputs equal to torch's with its weights loaded (masks of
both kinds, batch_first either way, norm_first either way), gradients by float64 gradcheck,
and a compiled forward equal to eager."""

import numpy as np
import pytest

import compiler
from tinygrad_edu import Tensor, gradcheck, nn


def _torch():
    return pytest.importorskip("torch")


def _loaded(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    return ours


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_equals_torchs_with_masks(batch_first):
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    ours = _loaded(nn.MultiheadAttention(8, 2, batch_first=batch_first), theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 5, 8) if batch_first else (5, 2, 8))
    kv = rng.standard_normal((2, 3, 8) if batch_first else (3, 2, 8))
    padding = np.array([[False, False, True], [False, True, False]])
    added = rng.standard_normal((5, 3))
    causal = np.triu(np.ones((5, 5), bool), 1)  # True: not allowed (torch's convention)
    f64 = lambda a: Tensor(a, dtype=np.float64)  # noqa: E731
    got = ours(f64(q), f64(kv), f64(kv), key_padding_mask=Tensor(padding), attn_mask=f64(added))
    want = theirs(
        torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
        key_padding_mask=torch.tensor(padding), attn_mask=torch.tensor(added),
    )  # fmt: skip
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12)
    got = ours(f64(q), f64(q), f64(q), attn_mask=Tensor(causal), average_attn_weights=False)
    want = theirs(
        torch.tensor(q), torch.tensor(q), torch.tensor(q),
        attn_mask=torch.tensor(causal), average_attn_weights=False,
    )  # fmt: skip
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert ours(f64(q), f64(q), f64(q), need_weights=False)[1] is None


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_equals_torchs(norm_first):
    torch = _torch()
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    )
    theirs = torch.nn.TransformerEncoder(
        layer, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False
    ).double()
    mine = nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    )
    ours = _loaded(nn.TransformerEncoder(mine, 2, norm=nn.LayerNorm(8)), theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    padding = np.array([[False] * 4 + [True], [False] * 5])
    got = ours(Tensor(x, dtype=np.float64), src_key_padding_mask=Tensor(padding))
    want = theirs(torch.tensor(x), src_key_padding_mask=torch.tensor(padding))
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-11)


def test_attention_gradients_and_compiled_forward():
    layer = nn.MultiheadAttention(4, 2, batch_first=True)
    w = layer.in_proj_weight.numpy().astype(np.float64)
    x = np.random.default_rng(2).standard_normal((1, 3, 4))

    def attend(t, weight):
        layer.in_proj_weight = weight
        return layer(t, t, t)[0]

    assert gradcheck(attend, [x, w])
    block = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    x32 = np.random.default_rng(3).standard_normal((2, 5, 8)).astype(np.float32)
    compiled = compiler.compile(block, x32, backend="llvm")
    np.testing.assert_allclose(compiled(x32), block(Tensor(x32)).numpy(), rtol=1e-4, atol=1e-5)


def test_multihead_attention_with_other_key_and_value_widths_equals_torchs():
    torch = _torch()
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True).double()
    ours = _loaded(nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True), theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # q/k/v_proj_weight
    rng = np.random.default_rng(4)
    q, k, v = (
        rng.standard_normal((2, 4, 8)),
        rng.standard_normal((2, 6, 5)),
        rng.standard_normal((2, 6, 3)),
    )
    got = ours(*(Tensor(a, dtype=np.float64) for a in (q, k, v)))
    want = theirs(*(torch.tensor(a) for a in (q, k, v)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="add_bias_kv and add_zero_attn are not offered"):
        nn.MultiheadAttention(8, 2, add_bias_kv=True)
