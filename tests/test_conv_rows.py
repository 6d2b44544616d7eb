"""The whole-row panels of stride-1 implicit-GEMM convolutions (`conv_gemm.row_blocks`,
`pack_rows`): rows narrower than the register tile (several per panel, the rest padding)
and wider ones (constant segments, the last overlapping), on every vector ISA the host can
run, each compared with the eager (numpy) result. float32: the kernel sums in another order.
"""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import compiler  # noqa: E402
from compiler.conv_gemm import ConvGeometry, RowBlocks, row_blocks  # noqa: E402
from compiler.target import Tile  # noqa: E402
from tinygrad_edu import Tensor, nn  # noqa: E402


def assert_sgd_step_equals_eager(make_net, x):
    """One SGD step of mean(net(x)^2), compiled with llvm, leaves the parameters eager's does."""
    from tinygrad_edu import manual_seed, optim

    def loss(out, _target):
        return (out * out).mean()

    states = []
    for compiled in (False, True):
        manual_seed(0)
        net = make_net()
        opt = optim.SGD(net.parameters(), lr=0.1)
        if compiled:
            compiler.compile_train_step(net, loss, opt, x, x, backend="llvm")(x, x)
        else:
            opt.zero_grad()
            loss(net(Tensor(x)), None).backward()
            opt.step()
        states.append(net.state_dict())
    for name in states[0]:
        np.testing.assert_allclose(states[1][name], states[0][name], rtol=1e-5, atol=1e-6)


def geometry(out_hw, cols, stride=(1, 1)):
    return ConvGeometry(
        "x", out_hw, out_hw, 1, (3, 3), stride, (1, 1), (1, 1), Tile(6, cols // 16 or 1, 16), 0
    )


def test_row_blocks_cover_narrow_and_wide_rows():
    # 56-pixel rows in a 64-column panel: one row each (56/64 of it used)
    assert row_blocks(geometry((56, 56), 64)) == RowBlocks(1, 56, (0,))
    # 14-pixel rows: four to a panel
    assert row_blocks(geometry((14, 14), 64)) == RowBlocks(4, 14, (0,))
    # 40-pixel rows in a 16-column panel: segments at 0, 16 and 24 (pulled back)
    assert row_blocks(geometry((40, 40), 16)) == RowBlocks(1, 16, (0, 16, 24))
    # a strided convolution's rows too (packed from a column-split copy), but not a 1-wide
    # kernel's; 5x5 outputs would waste 61% of a panel
    assert row_blocks(geometry((56, 56), 64, stride=(2, 2))) == RowBlocks(1, 56, (0,))
    one_wide = replace(geometry((56, 56), 64, stride=(2, 2)), kernel=(1, 1))
    assert row_blocks(one_wide) is None
    assert row_blocks(geometry((5, 5), 64)) is None


@pytest.mark.parametrize(
    "kernel, padding, dilation, groups",
    [(3, 1, 1, 1), (1, 0, 1, 1), (5, 2, 1, 2), (3, 2, 2, 1), (3, 3, 3, 1), (2, 0, 1, 1)],
)
@pytest.mark.parametrize("width", ["narrow", "exact", "wide"])
def test_row_panel_convolution_equals_eager(tile_cols, kernel, padding, dilation, groups, width):
    rng = np.random.default_rng(kernel * 7 + padding)
    reach = dilation * (kernel - 1) - 2 * padding  # input columns an output column spans
    out_w = {"narrow": tile_cols // 3, "exact": tile_cols, "wide": 2 * tile_cols + tile_cols // 2}[
        width
    ]
    out_h = 5
    x = rng.standard_normal((2, 2 * groups, out_h + reach, out_w + reach)).astype(np.float32)
    conv = nn.Conv2d(2 * groups, 4, kernel, padding=padding, dilation=dilation, groups=groups)
    fn = compiler.compile(lambda t: conv(t).relu(), x, backend="llvm")
    (kernel_ir,) = [k for k in fn.kernels if "conv2d" in k.ops]
    assert "prow_ok" in kernel_ir.pseudo_c()  # the row-panel pack, not the general one
    want = conv(Tensor(x)).relu().numpy()
    np.testing.assert_allclose(fn(x), want, rtol=1e-5, atol=1e-5)


def test_row_panel_input_gradient_equals_eager(tile_cols):
    """The stride-1 input gradient is the same schedule (a full correlation): a 1x1 conv in
    front learns from it, so one compiled SGD step equals the eager one."""
    x = np.random.default_rng(3).standard_normal((2, 3, 6, tile_cols + 2)).astype(np.float32)
    assert_sgd_step_equals_eager(
        lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 5, 3, padding=1)), x
    )


def test_padding_rows_outside_the_image_are_zero_even_next_to_an_infinity(tile_cols):
    """A window row above the image reads row 0's memory and selects 0: an infinity in row
    0 reaches only the outputs whose windows really cover it (not NaN from inf * 0)."""
    x = np.ones((1, 1, 9, tile_cols), np.float32)
    x[0, 0, 0, 3] = np.inf
    conv = nn.Conv2d(1, 2, 3, padding=3, dilation=3, bias=False)
    fn = compiler.compile(conv, x, backend="llvm")
    want = conv(Tensor(x)).numpy()
    got = fn(x)
    assert np.isfinite(got[0, :, 1]).all()  # output row 1's window rows: -2 (padding), 1, 4
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", ["narrow", "wide"])
def test_row_panel_convolution_with_a_fused_pool_equals_eager(tile_cols, width):
    """conv -> ReLU -> max-pool in one kernel (the pooled tile): its panels are row panels
    too."""
    out_w = {"narrow": tile_cols // 3, "wide": 2 * tile_cols + tile_cols // 2}[width]
    x = np.random.default_rng(out_w).standard_normal((2, 3, 6, out_w)).astype(np.float32)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    fn = compiler.compile(net, x, backend="llvm")
    (kernel,) = [k for k in fn.kernels if "conv2d" in k.ops]
    assert "max_pool2d" in kernel.ops and "prow_ok" in kernel.pseudo_c()
    np.testing.assert_allclose(fn(x), net(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_a_wider_tile_is_chosen_when_two_rows_fill_it_exactly(tile_cols, monkeypatch, tmp_path):
    """Its micro-kernel still keeps every accumulator in registers (no stack access). The
    image has two rows only, so the target's own tile cannot fill its column blocks by
    taking more rows a panel (two rows of 12 fill 24 of its 32 columns)."""
    from compiler.asm import hot_loop
    from compiler.conv_gemm import fit_row_panels
    from compiler.target import host_target

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))  # a fresh cache: compiled here
    target = host_target()
    for tile in target.wide_tiles:
        if tile.cols % 2:
            continue
        ow = tile.cols // 2
        geo = ConvGeometry(
            "x", (4, ow), (4, ow), 4, (3, 3), (1, 1), (1, 1), (1, 1), target.gemm_tile, 0
        )
        assert fit_row_panels(geo, target.wide_tiles, target.conv_panel_bytes).tile == tile
        # a panel over the budget keeps the target's own tile
        assert fit_row_panels(geo, target.wide_tiles, 0).tile == target.gemm_tile
        x = np.random.default_rng(ow).standard_normal((2, 4, 2, ow)).astype(np.float32)
        conv = nn.Conv2d(4, 8, 3, padding=1)
        fn = compiler.compile(conv, x, backend="llvm")
        kernel = fn.kernels[0]
        assert f"acc_tile[{min(tile.rows, 8)}][{tile.cols}]" in kernel.pseudo_c()
        loop = hot_loop(kernel.asm)
        assert loop is not None and loop.stack_accesses == 0 and loop.fmas >= tile.vectors
        np.testing.assert_allclose(fn(x), conv(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_small_images_share_panels_across_images():
    # 7x7 images, 16 of them: 9 rows of 7 fill 63 of 64 columns, not 7 rows (49)
    assert row_blocks(geometry((7, 7), 64), batch=16) == RowBlocks(9, 7, (0,), 16)
    # one image (or a pooled tile, which holds one): rows stay within it
    assert row_blocks(geometry((7, 7), 64)) == RowBlocks(7, 7, (0,))
    # rows that already fill the panel stay within their image
    assert row_blocks(geometry((16, 16), 64), batch=16) == RowBlocks(4, 16, (0,))


@pytest.mark.parametrize("hw, batch", [(7, 5), (5, 6), (3, 7)])
def test_rows_across_images_equal_eager_forward_and_input_gradient(tile_cols, hw, batch):
    """Blocks that end in one image and start in the next, the last block pulled back."""
    x = np.random.default_rng(hw).standard_normal((batch, 4, hw, hw)).astype(np.float32)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    fn = compiler.compile(lambda t: conv(t).relu(), x, backend="llvm")
    assert "pn" in fn.kernels[0].pseudo_c()
    np.testing.assert_allclose(fn(x), conv(Tensor(x)).relu().numpy(), rtol=1e-5, atol=1e-5)
    # the input gradient reaches the 1x1 conv in front
    assert_sgd_step_equals_eager(
        lambda: nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 6, 3, padding=1)), x
    )


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation, pool",
    [
        (3, (2, 2), 1, 1, False),
        (7, (2, 2), 3, 1, True),  # ResNet's stem, with its max-pool fused
        (11, (4, 4), 0, 1, True),  # AlexNet's conv1
        (3, (1, 2), 1, 1, False),
        (5, (3, 3), 2, 2, False),
        (4, (2, 3), 3, 1, False),
        (3, (2, 1), 1, 2, False),  # strided rows only: the plain row pack, rows s apart
    ],
)
def test_strided_convolutions_pack_whole_rows(tile_cols, kernel, stride, padding, dilation, pool):
    reach = dilation * (kernel - 1) + 1
    out_w = 2 * tile_cols + tile_cols // 2
    w = (out_w - 1) * stride[1] + reach - 2 * padding
    h = 4 * stride[0] + reach - 2 * padding
    x = np.random.default_rng(kernel).standard_normal((2, 3, h, w)).astype(np.float32)
    layers = [nn.Conv2d(3, 8, kernel, stride, padding, dilation), nn.ReLU()]
    net = nn.Sequential(*layers, *([nn.MaxPool2d(3, 2)] if pool else []))
    fn = compiler.compile(net, x, backend="llvm")
    (kernel_ir,) = [k for k in fn.kernels if "conv2d" in k.ops]
    code = kernel_ir.pseudo_c()
    # strided along columns: packed from the column-split copy; else the plain row pack
    assert ("xsplit" in code) == (stride[1] > 1) and ("prow_ok" in code) == (stride[1] == 1)
    np.testing.assert_allclose(fn(x), net(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_row_panels_are_used_where_they_beat_the_general_pack():
    """The scalar pack costs more per FMA with 16-lane vectors than with 8, and less the more
    output channels share it: AlexNet's conv1 (96 channels, 55-pixel rows) takes the column
    split with AVX-512's 64-column panels and keeps the general pack on AVX2's 16-column
    segments; a 13x13 layer of 384 channels keeps it on AVX2, takes row panels with 8."""
    from compiler.conv_gemm import _rows_pay

    def conv(tile, out_hw, kernel, stride):
        src = tuple((n - 1) * s + kernel for n, s in zip(out_hw, stride))
        return ConvGeometry("x", src, out_hw, 3, (kernel, kernel), stride, (0, 0), (1, 1), tile, 0)

    zmm, ymm = Tile(6, 4, 16), Tile(6, 2, 8)
    assert row_blocks(conv(zmm, (55, 55), 11, (4, 4)), 16, 96) == RowBlocks(1, 55, (0,))
    assert row_blocks(conv(ymm, (55, 55), 11, (4, 4)), 16, 96) is None
    small = conv(ymm, (13, 13), 3, (1, 1))
    assert row_blocks(small, 16, 384) is None
    assert _rows_pay(small, RowBlocks(1, 13, (0,)), 8)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_pooled_strided_convolution_splits_its_image_once(tile_cols, batch):
    """AlexNet's conv1 block: the pooled tile's task runs every block of its image, so the
    column-split copy of the input rows is made once, before them (one image: its channels
    split over two tasks)."""
    x = np.random.default_rng(batch).standard_normal((batch, 3, 67, 99)).astype(np.float32)
    net = nn.Sequential(nn.Conv2d(3, 8, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2))
    fn = compiler.compile(net, x, backend="llvm")
    code = fn.kernels[0].pseudo_c()
    # the copy comes before the loop over the image's blocks
    assert code.index("xsplit[") < code.index("for (int pb = 0;")
    np.testing.assert_allclose(fn(x), net(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_a_strided_convolution_with_images_to_spare_splits_each_image_once(tile_cols):
    """Images enough for every core twice: a task per image, which splits its input rows
    once and runs all its row blocks (`conv_gemm_rows`, whole)."""
    from compiler.target import host_target

    batch = 2 * host_target().cores
    x = np.random.default_rng(7).standard_normal((batch, 3, 23, 2 * tile_cols + 9))
    x = x.astype(np.float32)
    conv = nn.Conv2d(3, 8, 7, stride=2, padding=3)  # ResNet's stem: each row split 3.5 times
    fn = compiler.compile(lambda t: conv(t).relu(), x, backend="llvm")
    code = fn.kernels[0].pseudo_c()
    assert "xsplit[" in code and code.index("xsplit[") < code.index("for (int pb = 0;")
    np.testing.assert_allclose(fn(x), conv(Tensor(x)).relu().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "cin, cout, hw, stride, chunked_lanes",
    [
        (1024, 13, 6, 1, (8, 16)),  # 9216 taps: chunked on every ISA; 13 rows pad a block
        (192, 20, 13, 1, (16,)),  # AlexNet-like 13x13: AVX-512's wide tile over L1 chunks
        (512, 7, 7, 2, (8, 16)),  # strided (a column-split copy feeds the chunks)
        (512, 8, 27, 1, (8, 16)),  # 27-wide rows: two segments on AVX2, one scratch for both
    ],
)
def test_panels_larger_than_the_chunk_are_run_over_in_chunks(
    tile_cols, cin, cout, hw, stride, chunked_lanes
):
    """A panel over `chunk_bytes` (`conv_gemm.panel_chunks`): every channel block runs over
    one chunk of the taps, adding into `partial`, before the next. The sums (and the blocks
    past the last channel, which must not be written) still equal eager's, forward and
    through a compiled SGD step (whose input gradient is a convolution too)."""
    from compiler.conv_gemm import panel_chunks

    r = np.random.default_rng(0)
    x = r.standard_normal((2, cin, hw, hw)).astype(np.float32)
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    compiled = compiler.compile(conv, x, backend="llvm")
    np.testing.assert_allclose(
        compiled(x), conv(Tensor(x)).numpy(), rtol=1e-4, atol=1e-4 * np.sqrt(cin)
    )
    target = compiled.kernels[0].target
    if target.lanes in chunked_lanes:
        assert "partial" in compiled.kernels[0].pseudo_c()
    geo = ConvGeometry(
        "x", (hw, hw), (hw, hw), cin, (3, 3), (stride, stride), (1, 1), (1, 1),
        target.gemm_tile, 0, target.chunk_bytes,
    )  # fmt: skip
    chunks = panel_chunks(geo, target.gemm_tile.cols)
    assert chunks == 1 or cin % chunks == 0  # equal runs of whole channels
    assert_sgd_step_equals_eager(lambda: nn.Conv2d(cin, cout, 3, stride=stride, padding=1), x)


def test_panels_of_several_rows_fill_every_column_block():
    """With a row-panel budget, rows that leave part of a column block empty one at a time
    are packed several a panel and its blocks cross rows: 56-pixel rows two at a time
    (112 = 7 blocks of 16), 28-pixel rows four; the budget bounds the panel (one block's
    worth of taps per column: the rows one at a time, as before)."""
    from compiler.conv_gemm import _use

    def geo(hw, cin, budget):
        return replace(
            ConvGeometry("x", (hw, hw), (hw, hw), cin, (3, 3), (1, 1), (1, 1), (1, 1),
                         Tile(6, 2, 8), 0),
            group_bytes=budget,
        )  # fmt: skip

    for hw, rows in ((56, 2), (28, 4)):
        rb = row_blocks(geo(hw, 64, 1 << 20), batch=16, cores=2)
        assert rb == RowBlocks(rows, hw, (0,)) and _use(geo(hw, 64, 1 << 20), rb) == 1.0
    assert row_blocks(geo(56, 64, 0), batch=16) == RowBlocks(1, 16, (0, 16, 32, 40))
    # 64 channels x 9 taps x 112 columns x 4 bytes is over a 200 KiB budget: 56 a panel,
    # whole, in 4 blocks (the last pulled back)
    assert row_blocks(geo(56, 64, 200 << 10), batch=16) == RowBlocks(1, 56, (0,))
    # rows too wide for the budget even alone: segments of whole blocks
    assert row_blocks(geo(56, 64, 32 * 576 * 4), batch=16) == RowBlocks(1, 32, (0, 24))


def test_a_last_round_that_leaves_a_core_idle_counts_against_larger_panels():
    """One image of 4 rows of 12 on two cores: four rows a panel would fill its blocks
    (48 = 3 x 16) but leave one core idle; one row a panel uses 12 of 16 columns on both."""
    g = ConvGeometry("x", (4, 12), (4, 12), 4, (3, 3), (1, 1), (1, 1), (1, 1), Tile(6, 2, 8), 0)
    g = replace(g, group_bytes=1 << 20)
    assert row_blocks(g, batch=1, cores=1) == RowBlocks(4, 12, (0,))
    assert row_blocks(g, batch=1, cores=2) == RowBlocks(1, 12, (0,))


@pytest.mark.parametrize(
    "extra, stride, batch, pool",
    [
        (0, 1, 2, False),  # 1.5 blocks a row: two rows in 3 blocks, one cut mid-row
        (3, 1, 2, False),  # odd widths: half-vector and single-lane runs
        (3, 2, 2, False),  # strided: the pieces copy from the column-split rows
        (0, 1, 1, True),  # the pooled tile's panels
    ],
)
def test_panels_of_several_rows_equal_eager_forward_and_step(tile_cols, extra, stride, batch, pool):
    """Every pixel reaches its output once (pieces cut at the blocks' bounds, the last block
    pulled back), forward and through one compiled SGD step (rows across images take one
    block a panel: see `MAX_PACK_COPIES`) (the stride-1 input gradient
    is the same schedule; a strided one runs its phases' panels)."""
    out_w = tile_cols + tile_cols // 2 + extra  # rows of 1.5 column blocks (and a few)
    h = 8 * stride  # 8 output rows: whole panels of 2 or 4 rows
    w = (out_w - 1) * stride + 1
    x = np.random.default_rng(out_w).standard_normal((batch, 5, h, w)).astype(np.float32)
    layers = [nn.Conv2d(5, 7, 3, stride, 1), nn.ReLU(), *([nn.MaxPool2d(2)] if pool else [])]
    net = nn.Sequential(*layers)
    fn = compiler.compile(net, x, backend="llvm")
    (kernel,) = [k for k in fn.kernels if "conv2d" in k.ops]
    code = kernel.pseudo_c()
    # a loop over the panel's blocks; rows cut into pieces (or copied from the split rows)
    assert "cb0" in code and ("prow_ok1" in code or "xsplit" in code)
    np.testing.assert_allclose(fn(x), net(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    assert_sgd_step_equals_eager(
        lambda: nn.Sequential(nn.Conv2d(5, 5, 1), nn.Conv2d(5, 7, 3, stride, 1)), x
    )


def test_general_blocks_run_across_images_where_one_image_leaves_a_block_part_empty():
    from compiler.conv_gemm import across_images

    # 49 pixels fill 49 of 4 blocks' 64 columns one image at a time, all of 16 images' 49
    assert across_images(geometry((7, 7), 16), batch=16)
    assert not across_images(geometry((7, 7), 16), batch=1)
    # 56 x 56 pixels fill their 196 blocks exactly: nothing to gain
    assert not across_images(geometry((56, 56), 16), batch=16)
    # 3x3 images narrower than the tile: 9 of 16 columns alone, 81 of 96 nine together
    assert across_images(geometry((3, 3), 16), batch=9)
    # fewer pixels in the whole batch than one block holds
    assert not across_images(geometry((2, 2), 16), batch=3)


def _across_images_net(channels):
    """A residual block ending in an average pool, as ResNet's last one: its convolutions'
    epilogues (batch norm, the residual sum, ReLU, the pool) find each pixel's image."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.down = nn.Conv2d(channels, channels, 1, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            y = self.bn1(self.conv1(x)).relu()
            y = (self.bn2(self.conv2(y)) + x).relu()
            return self.pool(self.down(y)).flatten(1)

    return Block()


@pytest.mark.parametrize("hw, batch", [(7, 5), (5, 7), (3, 9)])
def test_general_blocks_across_images_equal_eager_forward_and_step(
    tile_cols, monkeypatch, hw, batch
):
    """The general pack's blocks across images (row panels turned off, so the stride-1
    convolutions and their input gradients take them): blocks that end in one image and
    start in the next, the last one pulled back."""
    import compiler.conv_gemm as conv_gemm

    monkeypatch.setattr(conv_gemm, "row_blocks", lambda *args, **kwargs: None)
    x = np.random.default_rng(hw).standard_normal((batch, 4, hw, hw)).astype(np.float32)
    from tinygrad_edu import manual_seed

    manual_seed(0)
    net = _across_images_net(4).eval()
    fn = compiler.compile(net, x, backend="llvm")
    convs = [k for k in fn.kernels if "conv2d" in k.ops and k.layer in ("conv1", "conv2")]
    assert len(convs) == 2 and all("pn = " in k.pseudo_c() for k in convs)
    np.testing.assert_allclose(fn(x), net(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    assert_sgd_step_equals_eager(lambda: _across_images_net(4), x)
