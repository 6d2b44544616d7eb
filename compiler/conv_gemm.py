"""CPU schedule: a convolution as an implicit GEMM on a packed panel.

Per image and group, conv2d is a matrix product `out[oc, p] = sum_k W[oc, k] * cols[k, p]`
with k = (ic, kh, kw) the taps and p = (oh, ow) the output pixels; `cols` is im2col, never
built whole. Instead a task copies BJ columns of it (one block of output pixels, all K taps)
into an on-chip `panel` (the pack, zero where a tap reads padding), then every block of BI
output channels runs the register-tiled micro-kernel over it: a BI x BJ accumulator tile
(the target's `gemm_tile`: BI rows x BJ/L vector registers of L lanes, e.g. 6 x 4 zmm with
AVX-512, 6 x 2 ymm with AVX2) takes, per tap, BI broadcasts of W times BJ/L vectors of the
panel, and is handed to the epilogue only once all K taps are summed. The pack is paid once
per panel and amortised over every output channel.

The input gradient of a stride-1 convolution is the same computation (a full correlation of
the output gradient with the flipped, transposed weight), so it reuses this schedule with a
different source and weight view. A strided one is not (its gradient scatters into
s-spaced input pixels), but each phase of input pixels (a + s*q, b + s*r) is a stride-1
correlation with the taps that reach it (`conv_gemm_phases`), so it runs as one such GEMM per
phase, multiplying no zero.

Where the source is read along contiguous rows (stride 1, the forward's and the input
gradient's GEMMs), blocks are whole output rows instead (`row_blocks`): every window tap's
valid columns are then compile-time ranges, and the pack is vector copies of input rows
(measured on Zen 5, a 64-channel 3x3 layer at 56x56 spent half its time in the scalar pack).

The weight gradient is a GEMM too (`weight_grad_gemm`): rows are output channels, columns are
taps, and the reduction runs over every image's pixels, packed a band of output rows at a time.

Remainders need no masks: the last column block starts at P - BJ and the last channel block
at rows - BI, so they overlap the previous block and recompute (and re-store) the same values
(reductions into a kept tile cannot overlap; they use a channel block that divides the rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .kernel import (
    Bin,
    Const,
    Expr,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Var,
    add,
    clamp,
    in_image,
    in_range,
    mul,
    transpose,
    vectorize,
)
from .target import Tile


def over_tile(
    rows: int, cols: int, body: list[Stmt], lanes: int, unroll: bool = True, vector: bool = True
) -> Loop:
    """`for ii < rows: for jj < cols: body` — the shape of every pass over a register tile:
    rows unrolled (constant offsets, so the tile stays in registers) and columns as vectors
    of `lanes`."""
    inner = Loop("jj", cols, body, [vectorize(lanes)] if vector else [])
    return Loop("ii", rows, [inner], ["unroll"] if unroll else [])


def rank1_update(rows: int, cols: int, a: Expr, b: Expr, lanes: int) -> Loop:
    """One step of the micro-kernel: for each tile row ii, broadcast `a` (it may use ii) and
    add it times the `lanes`-wide vectors of `b` (it may use jj) to `acc_tile[ii][jj]`."""
    tile = (Var("ii"), Var("jj"))
    fma = Store("acc_tile", tile, Bin("+", Load("acc_tile", tile), Bin("*", Var("aik"), b)))
    inner = Loop("jj", cols, [fma], [vectorize(lanes)])
    return Loop("ii", rows, [Let("aik", a), inner], ["unroll"])


@dataclass(frozen=True)
class ConvGeometry:
    """One convolution seen as a GEMM: `rows` output channels per group read `cg` source
    channels per group of `src` (N, C, H, W) through a kh x kw window; `tile` is the
    target's micro-kernel tile and `band_bytes` the weight gradient's pixel-band budget."""

    src: str
    src_hw: tuple[int, int]
    out_hw: tuple[int, int]
    cg: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    tile: Tile
    band_bytes: int
    #: the panel bytes every channel block runs over before the next (`micro_kernel`);
    #: 0: the whole panel at once
    chunk_bytes: int = 0
    #: the largest row panel (`RowBlocks`) a task packs at once, its column blocks then run
    #: one after another; 0: one column block's worth (rows narrower than the tile, or
    #: segments of wider ones)
    group_bytes: int = 0

    @property
    def lanes(self) -> int:
        return self.tile.lanes

    @property
    def taps(self) -> int:
        return self.cg * self.kernel[0] * self.kernel[1]

    @property
    def pixels(self) -> int:
        return self.out_hw[0] * self.out_hw[1]

    @property
    def reads_padding(self) -> bool:
        """Whether some window tap falls outside the source image (so loads need a test)."""
        (h, w), (oh_n, ow_n) = self.src_hw, self.out_hw
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return (
            any(self.padding)
            or (oh_n - 1) * sh + (kh - 1) * dh >= h
            or (ow_n - 1) * sw + (kw - 1) * dw >= w
        )

    @property
    def band_rows(self) -> int:
        """Output rows the weight gradient packs at a time: a band of pixels x the tap block
        that fits `band_bytes`."""
        pixels = self.band_bytes // (4 * min(self.tile.cols, self.taps))
        return max(1, min(self.out_hw[0], pixels // self.out_hw[1]))

    @property
    def block_cols(self) -> int:
        return min(self.tile.cols, self.pixels)

    @property
    def col_blocks(self) -> int:
        return -(-self.pixels // self.block_cols)


def selected_run(
    var: str, extent: int, dst: str, index: tuple[Expr, ...], source: Expr, ok: str, tags: list[str]
) -> Loop:
    """`for var < extent: dst[index] = ok ? source : 0` for a copy whose whole run is inside
    or outside the image together (`ok`, a row test): the source, addressed inside the image
    (a clamped row), is loaded first, so the select holds no load and stays a branch-free
    (vector) select; a select, not a multiply by 0, so an infinity cannot turn into NaN."""
    value = f"{var}_value"
    return Loop(
        var,
        extent,
        [Let(value, source), Store(dst, index, Select(Var(ok), Var(value), Const(0.0)))],
        tags,
    )


def pack(
    geo: ConvGeometry, n: Expr, channel0: Expr, p0: Expr, bj: int = 0, across: bool = False
) -> list[Stmt]:
    """Copy columns p0 .. p0+BJ-1 of image n's im2col (source channels from `channel0`) into
    `panel[tap][col]`; `across`: p0 counts the pixels of all images (`ImageBlocks`), so
    each column finds its image `pn` too, and `n` is unused. Scalar loops: each column
    computes its window origin once, and a vectorised version would need gathers (strided
    or row-crossing reads)."""
    ow_n = geo.out_hw[1]
    (kh_n, kw_n), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    bj = bj or geo.block_cols
    pixel = add(p0, Var("pj"))
    image: list[Stmt] = []
    if across:
        image = [Let("pn", Bin("/", pixel, Const(geo.pixels)))]
        n, pixel = Var("pn"), Bin("%", pixel, Const(geo.pixels))
    ih = add(Var("ohb"), mul(Var("pkh"), dh))
    iw = add(Var("owb"), mul(Var("pkw"), dw))
    tap = add(mul(add(mul(Var("pic"), kh_n), Var("pkh")), kw_n), Var("pkw"))
    value: Expr = Load(geo.src, (n, add(channel0, Var("pic")), ih, iw))
    if geo.reads_padding:  # only the taps that read inside the image load (padding: 0)
        value = Select(in_image(ih, iw, geo.src_hw), value, Const(0.0))
    return [
        Loop(
            "pj",
            bj,
            [
                *image,
                Let("ohb", add(mul(Bin("/", pixel, Const(ow_n)), sh), Const(-geo.padding[0]))),
                Let("owb", add(mul(Bin("%", pixel, Const(ow_n)), sw), Const(-geo.padding[1]))),
                Loop(
                    "pic",
                    geo.cg,
                    [
                        Loop(
                            "pkh",
                            kh_n,
                            [Loop("pkw", kw_n, [Store("panel", (tap, Var("pj")), value)])],
                            ["scalar"],
                        )
                    ],
                    ["scalar"],
                ),
            ],
            ["scalar"],
        )
    ]


def micro_kernel(
    geo: ConvGeometry,
    rows: int,
    row0: Expr,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr], list[Stmt]],
    bj: int | None = None,
    valid: int | None = None,
    block: tuple[Expr, Expr] | None = None,
) -> list[Stmt]:
    """For each block of BI of the task's `rows` output channels (absolute channel row0 + r):
    accumulate the BI x BJ tile over every tap of the panel, then run `finish(r, j)` per
    element with the sum in `acc_v` (r: the channel within the task, j: the pixel's column
    in the panel; only the first `valid` columns, when the panel is padded to BJ).
    `a_load(oc, ic, kh, kw)` reads the weight of output channel oc at tap (ic, kh, kw).
    `block` = (first panel row, first column): the panel holds several column blocks one
    after another (`row_panel_micro_kernels`), this one from that row, its pixels from
    that column on."""
    bi = min(geo.tile.rows, rows)
    bj = bj or geo.block_cols
    valid = valid or bj
    lanes = geo.lanes
    tile = (Var("ii"), Var("jj"))
    first_tap, column = (None, Var("jj")) if block is None else (block[0], add(block[1], Var("jj")))
    chunks = panel_chunks(geo, bj)
    if chunks > 1:
        return _chunked_micro_kernel(
            geo, rows, row0, a_load, finish, bj, valid, chunks, first_tap, column
        )
    row = add(Var("ib"), Var("ii"))
    taps = tap_loops(geo, bi, bj, row0, row, Var("kc"), geo.cg, a_load, first_tap)
    return [
        Loop(
            "i0",
            -(-rows // bi),
            [
                # the last block overlaps its neighbour instead of running past `rows`
                Let("ib", Bin("min", mul(Var("i0"), bi), Const(rows - bi))),
                over_tile(bi, bj, [Store("acc_tile", tile, Const(0.0))], lanes),
                taps,
                # a copy with constant offsets keeps acc_tile in registers (the epilogue
                # indexes its copy with loop variables)
                over_tile(bi, bj, [Store("done_tile", tile, Load("acc_tile", tile))], lanes),
                over_tile(
                    bi,
                    valid,
                    [Let("acc_v", Load("done_tile", tile)), *finish(row, column)],
                    lanes,
                    unroll=False,
                ),
            ],
        )
    ]


def panel_chunks(geo: ConvGeometry, cols: int) -> int:
    """In how many runs of whole source channels the channel blocks go over the panel: one
    while the panel fits `chunk_bytes`, else the fewest equal runs that each fit (a divisor
    of the channels, so every run has the same constant extent)."""
    per_channel = geo.kernel[0] * geo.kernel[1] * cols * 4
    if not geo.chunk_bytes or geo.cg * per_channel <= geo.chunk_bytes:
        return 1
    return (
        next(
            c
            for c in range(2, geo.cg + 1)
            if geo.cg % c == 0 and geo.cg // c * per_channel <= geo.chunk_bytes
        )
        if geo.chunk_bytes >= per_channel
        else geo.cg
    )


def tap_loops(
    geo: ConvGeometry,
    bi: int,
    bj: int,
    row0: Expr,
    row: Expr,
    kc: Expr,
    channels: int,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    first_tap: Expr | None = None,
) -> Loop:
    """The micro-kernel's sum over `channels` source channels (loop `kc`; `kc` the absolute
    channel) and every (kr, kq) tap: per tap, the weights of output channels row0 + `row`
    times the panel's row of that tap (counted from panel row `first_tap`), a rank-1
    update of the BI x BJ register tile."""
    kh_n, kw_n = geo.kernel
    tap = add(mul(add(mul(kc, kh_n), Var("kr")), kw_n), Var("kq"))
    weight = a_load(add(row0, row), kc, Var("kr"), Var("kq"))
    at = tap if first_tap is None else add(first_tap, tap)
    per_tap = rank1_update(bi, bj, weight, Load("panel", (at, Var("jj"))), geo.lanes)
    return Loop("kc", channels, [Loop("kr", kh_n, [Loop("kq", kw_n, [per_tap])])])


def _chunked_micro_kernel(
    geo: ConvGeometry,
    rows: int,
    row0: Expr,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr], list[Stmt]],
    bj: int,
    valid: int,
    chunks: int,
    first_tap: Expr | None,
    column: Expr,
) -> list[Stmt]:
    """`micro_kernel` for a panel larger than `chunk_bytes` (a 512-channel 3x3 layer's is
    4608 taps x 64 columns, 1.2 MiB): every channel block runs over one chunk of the taps,
    adding into its rows of `partial`, before the next chunk, so the chunk is re-read from
    L2 (the whole panel, once per block, came from L3: ResNet-18's 7x7 layers ran at 65% of
    peak). Blocks tile `rows` from 0 without overlap (an overlapping block would add a chunk
    twice); the last one's rows past `rows` read the last channel's weights and are never
    finished."""
    bi = min(geo.tile.rows, rows)
    blocks = -(-rows // bi)
    lanes = geo.lanes
    per_chunk = geo.cg // chunks
    kc = add(mul(Var("kb"), per_chunk), Var("kc"))
    row = Bin("min", add(Var("ib"), Var("ii")), Const(rows - 1))
    taps = tap_loops(geo, bi, bj, row0, row, kc, per_chunk, a_load, first_tap)
    part = (add(Var("ib"), Var("ii")), Var("jj"))
    return [  # `partial` is declared by the caller (`micro_kernel_locals`)
        Loop(
            "pr",
            blocks * bi,
            [
                Loop(
                    "jj",
                    bj,
                    [Store("partial", (Var("pr"), Var("jj")), Const(0.0))],
                    [vectorize(lanes)],
                )
            ],
        ),
        Loop("kb", chunks, [through_kept_tile("partial", blocks, bi, bj, taps, lanes)]),
        Loop(
            "i0",
            blocks,
            [
                # finishing twice is harmless: the last block is pulled back to end at `rows`
                Let("ib", Bin("min", mul(Var("i0"), bi), Const(rows - bi))),
                over_tile(
                    bi,
                    valid,
                    [
                        Let("acc_v", Load("partial", part)),
                        *finish(add(Var("ib"), Var("ii")), column),
                    ],
                    lanes,
                    unroll=False,
                ),
            ],
        ),
    ]


def column_block_start(geo: ConvGeometry, block: Expr) -> Expr:
    """First pixel of column block `block`; the last block is pulled back to end at P."""
    bj = geo.block_cols
    return Bin("min", mul(block, bj), Const(geo.pixels - bj))


def micro_kernel_locals(
    taps: int, rows: int, cols: int, tile: Tile, chunked: bool, blocks: int = 1
) -> list[Stmt]:
    """The on-chip buffers `micro_kernel` runs in, declared once per kernel however many
    micro-kernels it runs: the panel (of `blocks` column blocks one after another), the
    register tile and its copy, and (`chunked`: some micro-kernel's panel is run over in
    chunks) the partial sums of every channel block."""
    bi = min(tile.rows, rows)
    out: list[Stmt] = [
        Local("panel", (blocks * taps, cols)),
        Local("acc_tile", (bi, cols)),
        Local("done_tile", (bi, cols)),
    ]
    if chunked:
        out.append(Local("partial", (-(-rows // bi) * bi, cols)))
    return out


def locals_for(geo: ConvGeometry, rows: int, cols: int = 0, blocks: int = 1) -> list[Stmt]:
    """`micro_kernel_locals` for micro-kernels of `geo` on panels of `blocks` column blocks
    `cols` wide (default: its own)."""
    cols = cols or geo.block_cols
    chunked = panel_chunks(geo, cols) > 1
    return micro_kernel_locals(geo.taps, rows, cols, geo.tile, chunked, blocks)


def pixel_position(geo: ConvGeometry, p0: Expr, jj: Expr) -> list[Stmt]:
    """Lets `oh`, `ow` for panel column jj of the block starting at p0."""
    ow_n = geo.out_hw[1]
    pixel = add(p0, jj)
    return [Let("oh", Bin("/", pixel, Const(ow_n))), Let("ow", Bin("%", pixel, Const(ow_n)))]


def pixel_index(geo: ConvGeometry, p0: Expr, jj: Expr, flat: bool) -> tuple[list[Stmt], Expr, Expr]:
    """(Lets, oh, ow) of panel column jj. `flat`: the pixel as (0, p), the same row-major
    address as (p / OW, p % OW) in an (..., OH, OW) buffer, and contiguous in jj, so the
    epilogue vectorises."""
    if flat:
        return [], Const(0), add(p0, jj)
    return pixel_position(geo, p0, jj), Var("oh"), Var("ow")


def conv_gemm_direct(
    geo: ConvGeometry,
    batch: int,
    groups: int,
    rows: int,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr, Expr, Expr], list[Stmt]],
    flat: bool = False,
    cores: int = 1,
) -> list[Stmt]:
    """Tasks over (image, group, column block), parallel: pack, then all channel blocks;
    `finish(n, oc, oh, ow)` consumes `acc_v` for each output element (`flat`: see
    `pixel_index`). Row panels where they apply (`conv_gemm_rows`, for `cores`)."""
    rb = row_blocks(geo, batch, rows, cores)
    if rb is not None:
        return conv_gemm_rows(geo, rb, batch, groups, rows, a_load, finish, flat, cores)
    if across_images(geo, batch):
        return _conv_gemm_across(geo, batch, groups, rows, a_load, finish, flat)
    blocks = geo.col_blocks
    n = Var("n")
    task = Var("task")

    def done(r: Expr, jj: Expr) -> list[Stmt]:
        oc = add(mul(Var("g"), rows), r)
        lets, oh, ow = pixel_index(geo, Var("p0"), jj, flat)
        return lets + finish(n, oc, oh, ow)

    body: list[Stmt] = [
        *locals_for(geo, rows),
        Let("n", Bin("/", task, Const(groups * blocks))),
        Let("g", Bin("%", Bin("/", task, Const(blocks)), Const(groups))),
        Let("p0", column_block_start(geo, Bin("%", task, Const(blocks)))),
        *pack(geo, n, mul(Var("g"), geo.cg), Var("p0")),
        *micro_kernel(geo, rows, mul(Var("g"), rows), a_load, done),
    ]
    return [Loop("task", batch * groups * blocks, body, ["parallel"])]


def across_images(geo: ConvGeometry, batch: int) -> bool:
    """Whether the general pack's column blocks run on across the batch's images (pixel p
    of all N * P): where an image's pixels leave its last block (or its only one, narrower
    than the tile) partly empty, and the whole batch fills its blocks clearly better
    (`ACROSS_IMAGES_GAIN`). ResNet's 7x7 layers (49
    pixels) fill 49 of 4 AVX2 blocks' 64 columns one image at a time, and all 784 columns
    of 16 images' 49 blocks together."""
    cols, pixels = geo.tile.cols, geo.pixels
    if batch < 2 or batch * pixels < cols:
        return False
    # an image narrower than the tile still runs a tile's vectors (the rest lane by lane)
    per_image = pixels / (geo.col_blocks * cols)
    across = batch * pixels / (-(-batch * pixels // cols) * cols)
    return across > per_image + ACROSS_IMAGES_GAIN


def _conv_gemm_across(
    geo: ConvGeometry,
    batch: int,
    groups: int,
    rows: int,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr, Expr, Expr], list[Stmt]],
    flat: bool,
) -> list[Stmt]:
    """`conv_gemm_direct`'s tasks over (group, column block of all images' pixels): each
    panel column, and each output element, locates its image and pixel by division (the
    last block pulled back to end at N * P)."""
    cols, pixels = geo.tile.cols, geo.pixels
    total = batch * pixels
    blocks = -(-total // cols)
    task = Var("task")

    def done(r: Expr, jj: Expr) -> list[Stmt]:
        oc = add(mul(Var("g"), rows), r)
        q = add(Var("p0"), jj)
        lets, oh, ow = pixel_index(geo, Const(0), Bin("%", q, Const(pixels)), flat)
        return [Let("n", Bin("/", q, Const(pixels))), *lets, *finish(Var("n"), oc, oh, ow)]

    body: list[Stmt] = [
        *locals_for(geo, rows, cols),
        Let("g", Bin("/", task, Const(blocks))),
        Let("p0", Bin("min", mul(Bin("%", task, Const(blocks)), cols), Const(total - cols))),
        *pack(geo, Const(0), mul(Var("g"), geo.cg), Var("p0"), cols, across=True),
        *micro_kernel(geo, rows, mul(Var("g"), rows), a_load, done, cols),
    ]
    return [Loop("task", groups * blocks, body, ["parallel"])]


@dataclass(frozen=True)
class RowBlocks:
    """Column blocks made of whole output rows, for a stride-1 convolution: a task packs
    `rows` rows of `width` pixels from column `start` (one of `starts`, fixed at compile
    time) row after row into one panel, then runs the panel's column blocks of the tile's
    BJ columns one after another (`row_panel_micro_kernels`; the last block pulled back to
    end with the panel, a panel narrower than BJ one block with the rest zero). Because
    every column position is a constant, each window tap's valid columns are a constant
    range and the pack copies contiguous input runs as vectors (the general pack is
    scalar: a block that starts anywhere crosses rows at run time). Rows are whole
    (`width` = OW, one start) unless one row's panel would exceed the geometry's
    `group_bytes`; then it is packed in segments. Blocks of a panel of several rows cross
    rows: 56-pixel rows one at a time fill 56 of 4 blocks' 64 columns (AVX2's 16 a
    block), two at a time all of 7 blocks' 112. With `images` > 1 a panel's rows may
    continue into the next image: 7x7 images fill 9 rows of a 64-column panel (63 pixels)
    instead of 7 (49), at the price of an epilogue that locates each pixel by division."""

    rows: int
    width: int
    starts: tuple[int, ...]
    images: int = 1  # > 1: the rows run on across this many images

    @property
    def used(self) -> int:
        """The panel columns that hold pixels."""
        return self.rows * self.width

    def blocks(self, cols: int) -> int:
        """How many column blocks of `cols` run over the panel."""
        return max(1, -(-self.used // cols))


# the least share of a row-block panel's columns that hold pixels (the rest is computed and
# thrown away); below it, the general pack's exact blocks win
ROW_PANEL_USE = 0.75


# how much more of the panels' columns blocks across images must fill before they are
# chosen, as rows (`row_blocks`) or general blocks (`across_images`): their epilogue
# divides to find each pixel's image and row
ACROSS_IMAGES_GAIN = 0.05


def row_blocks(
    geo: ConvGeometry, batch: int = 1, channels: int = 0, cores: int = 1
) -> RowBlocks | None:
    """Whole-row blocks for `geo` (see `RowBlocks`): as many rows a panel as compute the
    fewest columns per core (`_balanced_use`: the columns wasted, and a last round of tasks
    that leaves some of the `cores` idle), then the fewest in all, then the fewest rows
    among equals, running on across the `batch` images when that fills the panels clearly
    better. A convolution strided
    along columns packs from a column-split copy of its input rows (`split_columns`). Row
    panels only where they beat the general pack (`_rows_pay`, given the convolution's
    `channels` out). None when too much of the panel would be padding, for 1-wide kernels
    strided along columns, or when the split copy would not fit on chip."""
    oh_n = geo.out_hw[0]
    if geo.stride[1] > 1 and geo.kernel[1] == 1:
        # one column per tap: the general pack copies exactly the columns needed, where
        # the column split would copy every phase (measured 2x slower, 1x1 stride 2)
        return None

    def best(images: int) -> tuple[RowBlocks | None, float]:
        found, found_key = None, (0.0, 0.0)
        for rows in range(1, images * oh_n + 1):
            rb = _row_group(geo, rows, images)
            if rb is None:  # more rows only make the panel larger and its pack longer
                break
            # equal balance: the fewer columns computed in all
            key = (round(_balanced_use(geo, rb, batch, cores), 9), round(_use(geo, rb), 9))
            if key > found_key:
                found, found_key = rb, key
        return found, found_key[0]

    blocks, use = best(1)
    if batch > 1 and geo.stride[1] == 1:
        across, across_use = best(batch)
        if across is not None and across_use > use + ACROSS_IMAGES_GAIN:
            blocks = across
    if blocks is None or _use(geo, blocks) < ROW_PANEL_USE or not _rows_pay(geo, blocks, channels):
        return None
    return blocks


def _row_group(geo: ConvGeometry, rows: int, images: int) -> RowBlocks | None:
    """Panels of `rows` whole rows (of `images` images' rows); None where the panel would
    exceed `group_bytes` (one panel no wider than the tile always fits) or, strided along
    columns, the column-split copy SPLIT_BYTES. A single row too wide for `group_bytes` is
    packed in segments of whole column blocks, the last pulled back to end at OW."""
    ow_n, cols = geo.out_hw[1], geo.tile.cols
    limit = max(cols, geo.group_bytes // (4 * geo.taps))  # the columns a panel may hold
    if rows * ow_n <= limit:
        rb = RowBlocks(rows, ow_n, (0,), images)
    elif rows > 1:
        return None
    else:
        width = limit // cols * cols
        starts = tuple(sorted({min(c, ow_n - width) for c in range(0, ow_n, width)}))
        rb = RowBlocks(1, width, starts, images)
    if geo.stride[1] > 1 and 4 * math.prod(_split_columns_shape(geo, rb)) > SPLIT_BYTES:
        return None
    if rows > 1 and rb.used > cols and (images > 1 or _pack_copies(geo, rb) > MAX_PACK_COPIES):
        return None
    return rb


# the most vector copies a multi-block row panel's pack may run per source channel and
# kernel row (`_pack_copies`): its pieces are compile-time code. Rows across images take
# one block a panel only: the paper AlexNet's 13x13 layers, six rows of 13 across images
# in 5 blocks (97.5% of the columns against the general pack's 96%), tripled those
# kernels' LLVM IR (the cold step 4.3 -> 5.3 s) and the step ran 1.24 -> 1.37 s (Zen 3)
MAX_PACK_COPIES = 32


def _pack_copies(geo: ConvGeometry, rb: RowBlocks) -> int:
    """The copies `pack_rows` emits per source channel and kernel row: a piece (`_pieces`)
    per kernel column, or one per piece where the kernel columns are a loop (strided
    along columns)."""
    per_piece = 1 if geo.stride[1] > 1 else geo.kernel[1]
    return len(_pieces(rb, geo.tile.cols)) * per_piece


def row_panel_micro_kernels(
    geo: ConvGeometry,
    rb: RowBlocks,
    rows: int,
    row0: Expr,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr], list[Stmt]],
    label: str = "cb",
) -> list[Stmt]:
    """`micro_kernel` over each column block of one packed row panel (`RowBlocks`), one
    after another in loop `label`, the last pulled back to end with the panel (recomputing,
    and storing again, a few columns); a panel no wider than the tile is one block whose
    `finish` sees only the columns that hold pixels. `finish(r, j)`: j is the panel column."""
    cols, used = geo.tile.cols, rb.used
    if used <= cols:
        return micro_kernel(geo, rows, row0, a_load, finish, cols, used)
    c0 = Var(f"{label}0")
    first = Let(c0.name, Bin("min", mul(Var(label), cols), Const(used - cols)))
    block = (mul(Var(label), geo.taps), c0)
    kernel = micro_kernel(geo, rows, row0, a_load, finish, cols, cols, block)
    return [Loop(label, rb.blocks(cols), [first, *kernel])]


# Fitted to 18 kernels measured on Zen 5 with AVX-512 and forced AVX2 (AlexNet's and
# ResNet's convolutions at N=16): the general (scalar) pack's cost per tap and panel column,
# in units of one vector FMA per output channel, and the column-split copy's cost per column
# in units of the products. They pick right in 17 of the 18 (the 18th, AVX2's 5x5 conv at
# 27x27, is 2.4% off); e.g. 13x13 layers keep the general pack on AVX2's 16-column panels
# (13 of 16 columns used: up to 7% slower as row panels) and take row panels with AVX-512.
SCALAR_PACK_COST = 5.0
SPLIT_COPY_COST = 0.3


def _rows_pay(geo: ConvGeometry, blocks: RowBlocks, channels: int) -> bool:
    """Whether row panels beat the general pack, given the convolution's `channels` out:
    per pixel the general pack costs SCALAR_PACK_COST * lanes / channels of the products
    (it is amortised over the output channels, the products are vectors across pixels);
    row panels cost the products over the columns they waste (`_use`), and strided along
    columns, the column-split copy too."""
    if channels <= 0:
        return True
    split = SPLIT_COPY_COST if geo.stride[1] > 1 else 0.0
    return 1.0 / _use(geo, blocks) + split < 1.0 + SCALAR_PACK_COST * geo.lanes / channels


# the largest column-split copy of a strided convolution's input rows a task keeps on chip
SPLIT_BYTES = 1 << 20


def _split_columns_shape(
    geo: ConvGeometry, rb: RowBlocks, whole: bool = False
) -> tuple[int, int, int, int]:
    """(channels, input rows, column phases, columns per phase) of `split_columns`'s copy:
    of one block's rows, or (`whole`) of every row the image's output rows read."""
    (kh_n, kw_n), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    rows = ((geo.out_hw[0] if whole else rb.rows) - 1) * sh + (kh_n - 1) * dh + 1
    return geo.cg, rows, sw, geo.out_hw[1] + (kw_n - 1) * dw // sw


def _use(geo: ConvGeometry, blocks: RowBlocks) -> float:
    """The share of computed panel columns that are pixels wanted (the rest: padding, and
    pixels computed twice where blocks overlap)."""
    (oh_n, ow_n), cols = geo.out_hw, geo.tile.cols
    rows = blocks.images * oh_n
    panels = -(-rows // blocks.rows) * len(blocks.starts)
    return rows * ow_n / (panels * blocks.blocks(cols) * cols)


def _balanced_use(geo: ConvGeometry, blocks: RowBlocks, batch: int, cores: int) -> float:
    """`_use` with the tasks (one a panel of rows, all its segments) dealt to `cores`: the
    idle cores of a last, partial round count as computed columns too."""
    rows = blocks.images * geo.out_hw[0]
    tasks = (batch if blocks.images == 1 else 1) * -(-rows // blocks.rows)
    rounds = -(-tasks // cores)
    return _use(geo, blocks) * tasks / (rounds * cores)


WIDE_CHUNKED_WASTE = 0.15  # see fit_row_panels


def fit_row_panels(
    geo: ConvGeometry,
    wide: list[Tile],
    panel_bytes: int,
    batch: int = 1,
    channels: int = 0,
    wide_chunk_bytes: int = 0,
    cores: int = 1,
) -> ConvGeometry:
    """`geo` with the register tile whose row panels waste the fewest columns: the target's
    own, or one of its `wide` tiles (fewer rows, more vectors) when that wastes strictly
    fewer and its whole panel stays within `panel_bytes` (a panel streamed from L3 costs
    more than the columns saved: measured on Zen 5, 3 x 7 zmm for 256 channels at 14x14, a
    1 MiB panel, ran 15% slower than 6 x 4). E.g. 56-pixel rows: two fill 3 x 7 zmm exactly.
    A larger panel may still take a wide tile, run over in L1-sized chunks
    (`wide_chunk_bytes`, see `panel_chunks`), where the target's tile leaves more than
    `WIDE_CHUNKED_WASTE` of its columns empty: AlexNet's 13x13 layers fill 52 of 6 x 4's 64
    columns and 104 of 3 x 7's 112 (on Zen 5, 12.7 -> 11.1 ms and 9.5 -> 8.7 ms); where the
    gain is smaller, the chunks cost more than it (ResNet-18's 28x28 layers, 87.5% -> 100%
    of the columns, ran 8% slower; its 7x7, 98% -> 100%, 50% slower)."""
    rb = row_blocks(geo, batch, channels, cores)
    best, best_use = geo, _use(geo, rb) if rb else 0.0
    own_use = best_use
    for tile in wide:
        # one block a panel: a wide tile is for rows that fill it exactly (or nearly)
        candidate = replace(geo, tile=tile, chunk_bytes=0, group_bytes=0)
        rb = row_blocks(candidate, batch, channels, cores)
        if rb is None:
            continue
        if candidate.taps * tile.cols * 4 > panel_bytes:
            if not wide_chunk_bytes or own_use >= 1 - WIDE_CHUNKED_WASTE:
                continue
            candidate = replace(candidate, chunk_bytes=wide_chunk_bytes)
        use = _use(candidate, rb)
        if use > best_use + 1e-9:
            best, best_use = candidate, use
    return best


def pack_rows(
    geo: ConvGeometry,
    rb: RowBlocks,
    n: Expr,
    channel0: Expr,
    start: int,
    oh0: Expr,
    whole: bool = False,
) -> list[Stmt]:
    """Copy the window taps of rows oh0 .. oh0+R-1, columns start .. start+width-1 into the
    panel, row after row: per tap and row a vector copy of the columns inside the image and
    zeros outside (both constant ranges). A panel of one column block holds them at
    `panel[tap][r*width + j]`; one of several blocks holds each block's columns apart
    (`panel[block*taps + tap][jj]`, so a block's micro-kernel reads contiguous rows of the
    tile's width, not every panel row's share of it), its rows cut at the blocks' bounds
    (`_pieces`, constant). A row outside the image reads the nearest one and selects 0
    instead (branch-free, so the copy stays a vector loop; a select, not a multiply by 0,
    so an infinity there cannot turn into NaN). Strided along columns, the copy reads
    `split_columns`'s copy instead."""
    kh_n = geo.kernel[0]
    if rb.used <= geo.tile.cols:  # one block: the rows in a loop
        runs = [(0, 0, rb.width, mul(Var("pr"), rb.width))]
        per_row = _row_copies(geo, rb, n, channel0, start, oh0, Var("pr"), runs, whole, "")
        return [Loop("pic", geo.cg, [Loop("pkh", kh_n, [Loop("pr", rb.rows, per_row)])])]
    rows: dict[int, list[tuple[int, int, int, Expr]]] = {}
    for block, r, column, count, at in _pieces(rb, geo.tile.cols):
        rows.setdefault(r, []).append((block, column, count, Const(at)))
    body: list[Stmt] = []
    for r, runs in rows.items():
        body += _row_copies(geo, rb, n, channel0, start, oh0, Const(r), runs, whole, str(r))
    # already a long run of copies: LLVM's unrolling of these loops only cost compile time
    # (AlexNet's conv1 block, when its pieces still unrolled the kernel's columns: 1.09 ->
    # 0.95 s to compile with the loops rolled)
    return [Loop("pic", geo.cg, [Loop("pkh", kh_n, body, ["rolled"])], ["rolled"])]


def _pieces(rb: RowBlocks, cols: int) -> list[tuple[int, int, int, int, int]]:
    """(block, row, first column, columns, block column) of each run of a row's pixels that
    one column block of a multi-block panel holds (the last block pulled back to end with
    the panel, so its first runs repeat the previous block's last)."""
    out = []
    for block in range(rb.blocks(cols)):
        first = min(block * cols, rb.used - cols)
        for r in range(rb.rows):
            lo, hi = max(first, r * rb.width), min(first + cols, (r + 1) * rb.width)
            if lo < hi:
                out.append((block, r, lo - r * rb.width, hi - lo, lo - first))
    return out


def _row_copies(
    geo: ConvGeometry,
    rb: RowBlocks,
    n: Expr,
    channel0: Expr,
    start: int,
    oh0: Expr,
    r: Expr,
    runs: list[tuple[int, int, int, Expr]],
    whole: bool,
    suffix: str,
) -> list[Stmt]:
    """`pack_rows`'s copies for row oh0 + r, inside loops `pic` (source channel) and `pkh`
    (kernel row): each run (block, column, count, at) takes `count` columns from start +
    column into panel columns at .. at + count - 1 of `block`, per kernel column kw."""
    (kh_n, kw_n), (dh, dw), (ph, pw) = geo.kernel, geo.dilation, geo.padding
    (h, w), (sh, sw), lanes = geo.src_hw, geo.stride, geo.lanes
    tap0 = mul(add(mul(Var("pic"), kh_n), Var("pkh")), kw_n)

    def panel_row(block: int, kw: int | Expr) -> Expr:  # tap (pic, pkh, kw) of `block`
        if isinstance(kw, int):
            return add(tap0, Const(block * geo.taps + kw))
        return add(tap0, kw, Const(block * geo.taps))

    out: list[Stmt] = []
    if sw > 1:
        # from the column-split copy, zeros in place: tap (kh, kw) is phase (kw*d) % s of
        # its row, from column (kw*d) // s on; kw a loop (AlexNet's conv1 has 11 of them)
        row = add(mul(oh0, sh) if whole else Const(0), mul(r, sh), mul(Var("pkh"), dh))
        reach = mul(Var("pkw"), dw)
        phase, shift = Bin("%", reach, Const(sw)), Bin("/", reach, Const(sw))
        copies: list[Stmt] = []
        for block, column, count, at in runs:
            index = (Var("pic"), row, phase, add(Var("pj"), shift, Const(start + column)))
            dst = (panel_row(block, Var("pkw")), add(at, Var("pj")))
            copy = Store("panel", dst, Load("xsplit", index))
            copies.append(Loop("pj", count, [copy], [vectorize(lanes)]))
        return [Loop("pkw", kw_n, copies, ["rolled"])]
    ok, clamped = f"prow_ok{suffix}", f"pih{suffix}"
    if rb.images > 1:  # row oh0 + r of all images' rows: its image and its row there
        oh_n, image, image_row = geo.out_hw[0], f"pn{suffix}", f"poh{suffix}"
        out += [
            Let(image, Bin("/", add(oh0, r), Const(oh_n))),
            Let(image_row, Bin("%", add(oh0, r), Const(oh_n))),
        ]
        n, ih = Var(image), add(mul(Var(image_row), sh), Const(-ph), mul(Var("pkh"), dh))
    else:
        ih = add(mul(add(oh0, r), sh), Const(-ph), mul(Var("pkh"), dh))
    out += [Let(ok, in_range(ih, h)), Let(clamped, clamp(ih, h))]
    for block, column, count, at in runs:
        for kw in range(kw_n):
            offset = start + column - pw + kw * dw  # input column of run column j: j + offset
            lo, hi = max(0, -offset), min(count, w - offset)
            dst_row = panel_row(block, kw)

            def zeros(a: int, b: int, dst_row: Expr = dst_row, at: Expr = at) -> list[Stmt]:
                if b <= a:
                    return []
                dst = (dst_row, add(at, Var("pj"), Const(a)))
                return [Loop("pj", b - a, [Store("panel", dst, Const(0.0))], [vectorize(lanes)])]

            if hi <= lo:
                out += zeros(0, count)
                continue
            column_at = add(Var("pj"), Const(lo + offset))
            source = Load(geo.src, (n, add(channel0, Var("pic")), Var(clamped), column_at))
            dst = (dst_row, add(at, Var("pj"), Const(lo)))
            out += zeros(0, lo)
            out.append(selected_run("pj", hi - lo, "panel", dst, source, ok, [vectorize(lanes)]))
            out += zeros(hi, count)
    return out


def split_columns(
    geo: ConvGeometry, rb: RowBlocks, n: Expr, channel0: Expr, oh0: Expr, whole: bool = False
) -> list[Stmt]:
    """For a convolution strided along columns: copy the input rows that output rows oh0 ..
    oh0+R-1 read into `xsplit[ic][row][b][q]` = input column s*q + b - padding (zero outside
    the image, rows outside it too), so that a window tap's columns, s apart in the input,
    are consecutive in phase b = (kw*d) % s and `pack_rows` copies them as vectors.
    The copy itself is scalar (strided reads), but once per task rather than once per tap.
    `whole`: every row the image's output rows read, copied once for all of them (a task
    that runs all its image's blocks: adjacent blocks share most of their input rows)."""
    (sh, sw), (ph, pw) = geo.stride, geo.padding
    h, w = geo.src_hw
    channels, rows, phases, qn = _split_columns_shape(geo, rb, whole)
    ih = add(Const(-ph), Var("sr")) if whole else add(mul(oh0, sh), Const(-ph), Var("sr"))
    per_row: list[Stmt] = [
        Let("srow_ok", in_range(ih, h)),
        Let("sih", clamp(ih, h)),
    ]
    for b in range(phases):
        # input column s*q + b - pw is inside the image for q in [lo, hi)
        lo = max(0, -(-(pw - b) // sw))
        hi = min(qn, (w - 1 + pw - b) // sw + 1)
        at = (Var("sc"), Var("sr"), Const(b))

        def zeros(a: int, z: int, at: tuple = at) -> list[Stmt]:
            if z <= a:
                return []
            return [
                Loop("sq", z - a, [Store("xsplit", (*at, add(Var("sq"), Const(a))), Const(0.0))])
            ]

        per_row += zeros(0, min(lo, qn))
        if hi > lo:
            col = add(mul(add(Var("sq"), Const(lo)), sw), Const(b - pw))
            value = Load(geo.src, (n, add(channel0, Var("sc")), Var("sih"), col))
            dst = (*at, add(Var("sq"), Const(lo)))
            per_row.append(selected_run("sq", hi - lo, "xsplit", dst, value, "srow_ok", ["scalar"]))
        per_row += zeros(max(hi, lo), qn)
    return [
        Local("xsplit", (channels, rows, phases, qn)),
        Loop("sc", channels, [Loop("sr", rows, per_row)]),
    ]


def _zero_padding_columns(taps: int, used: int, cols: int) -> list[Stmt]:
    """Zero a row panel's columns past the pixels: computed, never stored, but kept finite
    (stack memory could hold NaNs or slow denormals)."""
    if used >= cols:
        return []
    at = (Var("pt"), add(Var("pj"), Const(used)))
    return [Loop("pt", taps, [Loop("pj", cols - used, [Store("panel", at, Const(0.0))])])]


def conv_gemm_rows(
    geo: ConvGeometry,
    rb: RowBlocks,
    batch: int,
    groups: int,
    rows: int,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr, Expr, Expr], list[Stmt]],
    flat: bool,
    cores: int = 1,
) -> list[Stmt]:
    """`conv_gemm_direct` on whole-row blocks (`RowBlocks`): tasks over (image, group, block
    of R output rows, the last pulled back), parallel, or over (group, block of R rows of
    all images) when the rows run on across images; per row segment, a vector pack, then
    all channel blocks. Panel column jj is pixel oh0*OW + start + jj, so the epilogue indexes
    pixels exactly as the general schedule does (across images: row oh0 + jj / OW of all
    images' rows). A convolution strided along columns with images enough to keep the
    `cores` busy runs a task per (image, group) instead, which splits its image's input
    rows once for all its blocks (`split_columns`, whole)."""
    (oh_n, ow_n), cols = geo.out_hw, geo.tile.cols
    images = rb.images
    all_rows = images * oh_n  # the rows the blocks cover: one image's, or all of them
    blocks = -(-all_rows // rb.rows)
    n = Var("n")
    # a block's split rows over the rows its output rows advance by: how many times each
    # input row would be split (measured on Zen 5 at N=16: ResNet's stem, 3.5, 11.7 -> 10.3
    # ms with a task per image; AlexNet's conv1, 1.9, 8.9 -> 8.2 ms; a stride-2 3x3, 1.25,
    # 7% slower)
    repeats = _split_columns_shape(geo, rb)[1] / (rb.rows * geo.stride[0])
    whole = (
        geo.stride[1] > 1
        and images == 1
        and repeats >= 1.5
        and batch * groups >= 2 * cores
        and 4 * math.prod(_split_columns_shape(geo, rb, True)) <= SPLIT_BYTES
    )
    # the first row of the block: block `task % blocks`, or (whole) block `pb` of the image
    block = Var("pb") if whole else Bin("%", Var("task"), Const(blocks))
    first = Let("oh0", Bin("min", mul(block, rb.rows), Const(all_rows - rb.rows)))
    body: list[Stmt] = locals_for(geo, rows, cols, rb.blocks(cols))
    if whole:
        body += [
            Let("n", Bin("/", Var("task"), Const(groups))),
            Let("g", Bin("%", Var("task"), Const(groups))),
        ]
    else:
        body += [
            Let("n", Bin("/", Var("task"), Const(groups * blocks)) if images == 1 else Const(0)),
            Let("g", Bin("%", Bin("/", Var("task"), Const(blocks)), Const(groups))),
            first,
        ]
    body += _zero_padding_columns(geo.taps, rb.used, cols)
    if geo.stride[1] > 1:
        body += split_columns(geo, rb, n, mul(Var("g"), geo.cg), Var("oh0"), whole)
    per_block: list[Stmt] = []
    for start in rb.starts:
        p0 = add(mul(Var("oh0"), ow_n), Const(start))

        def done(r: Expr, jj: Expr, p0: Expr = p0) -> list[Stmt]:
            oc = add(mul(Var("g"), rows), r)
            if images > 1:  # row oh0 + jj / OW of all images' rows
                row = add(Var("oh0"), Bin("/", jj, Const(ow_n)))
                lets = [
                    Let("fn", Bin("/", row, Const(oh_n))),
                    Let("foh", Bin("%", row, Const(oh_n))),
                ]
                return lets + finish(Var("fn"), oc, Var("foh"), Bin("%", jj, Const(ow_n)))
            lets, oh, ow = pixel_index(geo, p0, jj, flat)
            return lets + finish(n, oc, oh, ow)

        per_block += pack_rows(geo, rb, n, mul(Var("g"), geo.cg), start, Var("oh0"), whole)
        per_block += row_panel_micro_kernels(geo, rb, rows, mul(Var("g"), rows), a_load, done)
    if whole:
        body.append(Loop("pb", blocks, [first, *per_block]))
        return [Loop("task", batch * groups, body, ["parallel"])]
    tasks = (batch if images == 1 else 1) * groups * blocks
    return [Loop("task", tasks, body + per_block, ["parallel"])]


def conv_gemm_tiled(
    geo: ConvGeometry,
    batch: int,
    groups: int,
    rows: int,
    splits: int,
    a_load: Callable[[Expr, Expr, Expr, Expr], Expr],
    to_tile: Callable[[Expr, Expr, Expr, Expr], list[Stmt]],
    from_tile: list[Stmt],
    tile_name: str = "tile",
    flat: bool = False,
) -> list[Stmt]:
    """Tasks over (image, group, channel split), parallel: every column block is packed and
    multiplied into an on-chip tile of this task's rows // splits channels (`to_tile(n, oc,
    oh, ow)` stores `acc_v` after its epilogue), then `from_tile` (with `n`, `g`, `s` set)
    reads the finished tile, e.g. to max-pool it: the conv output never reaches memory."""
    part = rows // splits
    n = Var("n")
    task = Var("task")

    def done(r: Expr, jj: Expr, p0: Expr | None = None) -> list[Stmt]:
        oc = add(mul(Var("g"), rows), mul(Var("s"), part), r)
        lets, oh, ow = pixel_index(geo, p0 or Var("p0"), jj, flat)
        return [*lets, Let("r", r), *to_tile(n, oc, oh, ow)]

    first_row = add(mul(Var("g"), rows), mul(Var("s"), part))
    channel0 = mul(Var("g"), geo.cg)
    rb = row_blocks(geo, 1, rows)
    once: list[Stmt] = []  # per task, before its blocks
    if rb is None:
        blocks = geo.col_blocks
        locals_ = locals_for(geo, part)
        per_block = [
            Let("p0", column_block_start(geo, Var("pb"))),
            *pack(geo, n, channel0, Var("p0")),
            *micro_kernel(geo, part, first_row, a_load, done),
        ]
    else:  # whole-row panels (`conv_gemm_rows`)
        (oh_n, ow_n), cols = geo.out_hw, geo.tile.cols
        blocks = -(-oh_n // rb.rows)
        locals_ = [
            *locals_for(geo, part, cols, rb.blocks(cols)),
            *_zero_padding_columns(geo.taps, rb.used, cols),
        ]
        oh0 = Bin("min", mul(Var("pb"), rb.rows), Const(oh_n - rb.rows))
        per_block = [Let("oh0", oh0)]
        # a task runs all its image's blocks: split its input rows once, when they fit
        split_bytes = 4 * math.prod(_split_columns_shape(geo, rb, True))
        whole = geo.stride[1] > 1 and split_bytes <= SPLIT_BYTES
        if whole:
            once = split_columns(geo, rb, n, channel0, Const(0), whole=True)
        elif geo.stride[1] > 1:
            per_block += split_columns(geo, rb, n, channel0, Var("oh0"))
        for start in rb.starts:
            p0 = add(mul(Var("oh0"), ow_n), Const(start))
            per_block += pack_rows(geo, rb, n, channel0, start, Var("oh0"), whole)
            per_block += row_panel_micro_kernels(
                geo, rb, part, first_row, a_load, lambda r, jj, p0=p0: done(r, jj, p0)
            )
    body: list[Stmt] = [
        *locals_,
        Local(tile_name, (part, *geo.out_hw)),
        Let("n", Bin("/", task, Const(groups * splits))),
        Let("g", Bin("%", Bin("/", task, Const(splits)), Const(groups))),
        Let("s", Bin("%", task, Const(splits))),
        *once,
        Loop("pb", blocks, per_block),
        *from_tile,
    ]
    return [Loop("task", batch * groups * splits, body, ["parallel"])]


def pixel_major_copy(
    buffer: str,
    col: str,
    cols: int,
    nrows: int,
    ow_n: int,
    value: Expr,
    block: int,
    setup: Sequence[Stmt] = (),
) -> Loop:
    """`for col < cols: setup; buffer[br * ow_n + bw][col] = value` over a band of `nrows` x
    `ow_n` pixels, scalar: the weight gradients' one copy per band into a pixel-major
    on-chip buffer (im2col columns of the taps, or the output gradient transposed).

    By blocks of `block` pixels of a row, every column of a block before the next: the
    block's rows of `buffer` then stay in L1 while each of their elements is written. Column
    by column over the whole band, each store went to another line, fetched from L2 again
    for every column (the stem's transpose took 13 of its weight gradient's 25 ms; 3 so)."""
    lanes = block
    block = min(block, ow_n)
    blocks = -(-ow_n // block)
    start = Bin("min", mul(Var("bb"), block), Const(ow_n - block))  # the last may overlap
    pixel = add(mul(Var("br"), ow_n), Var("bw"))
    store = Store(buffer, (pixel, Var(col)), value)
    run = Loop("bp", block, [Let("bw", add(Var("b0"), Var("bp"))), store], ["scalar"])
    # vectors of pixels (at least half full) by a whole number of vectors of columns:
    # transposed in registers where the backend can (contiguous runs along the pixels, and
    # a partial vector only where the target masks), else scalar
    tags = ["scalar"] + ([transpose(lanes)] if 2 * block >= lanes and cols % lanes == 0 else [])
    per_block = [Let("b0", start), Loop(col, cols, [*setup, run], tags)]
    return Loop("br", nrows, [Loop("bb", blocks, per_block)], ["scalar"])


def kept_tile_pass(
    blocks: int, bi: int, bj: int, nrows: int, ow_n: int, a: Expr, b: Expr, lanes: int
) -> Loop:
    """The weight gradients' micro-kernel over one band of `nrows` x `ow_n` pixels: for each
    of `blocks` blocks of BI rows of the kept `wtile`, load the BI x BJ block into the
    register tile, add one rank-1 update per pixel (`a` broadcast, `b` the vectors; both may
    use ib, ii, jj, br, bw), and store it back."""
    per_pixel = Loop("br", nrows, [Loop("bw", ow_n, [rank1_update(bi, bj, a, b, lanes)])])
    return through_kept_tile("wtile", blocks, bi, bj, per_pixel, lanes)


def through_kept_tile(kept: str, blocks: int, bi: int, bj: int, updates: Stmt, lanes: int) -> Loop:
    """For each of `blocks` blocks of BI rows (from row 0, no overlap) of the on-chip sums
    `kept`: load the BI x BJ block into the register tile, run `updates` (rank-1 updates of
    `acc_tile`), store it back. The weight gradients' bands and a chunked panel's channel
    blocks (`_chunked_micro_kernel`) both add into kept sums this way."""
    tile = (Var("ii"), Var("jj"))
    row = (add(Var("ib"), Var("ii")), Var("jj"))
    return Loop(
        "i0",
        blocks,
        [
            Let("ib", mul(Var("i0"), bi)),
            over_tile(bi, bj, [Store("acc_tile", tile, Load(kept, row))], lanes),
            updates,
            over_tile(bi, bj, [Store(kept, row, Load("acc_tile", tile))], lanes),
        ],
    )


def reduce_into_wtile(
    kept: int,
    done: int,
    bj: int,
    lanes: int,
    passes: Stmt,
    element: list[Stmt],
    finish: Callable[[Expr], list[Stmt]],
) -> list[Stmt]:
    """A weight-gradient task's frame: zero the `kept` x BJ `wtile`, run `passes` (every
    image's bands, adding into it), then per element (ii, jj) of its first `done` rows set
    `element`'s Lets (which weight it is) and `finish` the value."""
    at = (Var("ii"), Var("jj"))
    return [
        over_tile(kept, bj, [Store("wtile", at, Const(0.0))], lanes, unroll=False),
        passes,
        over_tile(
            done, bj, [*element, *finish(Load("wtile", at))], lanes, unroll=False, vector=False
        ),
    ]


def weight_grad_gemm(
    geo: ConvGeometry,
    batch: int,
    groups: int,
    rows: int,
    gout: str,
    finish: Callable[[Expr], list[Stmt]],
) -> list[Stmt]:
    """conv2d's weight gradient as a GEMM: dW[oc, tap] = sum over (n, oh, ow) of
    gout[n, oc, oh, ow] * cols[n, tap, (oh, ow)]. Tasks over (group, block of BJ taps),
    parallel; each keeps its rows x BJ block of dW in an on-chip `wtile`, packs R whole output
    rows of cols (taps across, pixels down) at a time and runs the micro-kernel over them:
    per pixel, BI broadcasts of gout times BJ/L vectors of the panel. `finish(value)` runs
    per weight element with `oc`, `ic`, `kh`, `kw` set."""
    (oh_n, ow_n), (kh_n, kw_n) = geo.out_hw, geo.kernel
    (sh, sw), (ph, pw), (dh, dw) = geo.stride, geo.padding, geo.dilation
    taps = geo.taps
    bj = min(geo.tile.cols, taps)
    lanes = geo.lanes
    blocks = -(-taps // bj)
    # a reduction may not overlap: the largest row block up to the tile's that divides rows
    bi = next(b for b in range(geo.tile.rows, 0, -1) if rows % b == 0)
    band = geo.band_rows
    full, rest = divmod(oh_n, band)

    def decompose(tap: Expr) -> list[Stmt]:
        return [
            Let("ic", Bin("/", tap, Const(kh_n * kw_n))),
            Let("kh", Bin("%", Bin("/", tap, Const(kw_n)), Const(kh_n))),
            Let("kw", Bin("%", tap, Const(kw_n))),
        ]

    def band_pass(oh0: Expr, nrows: int) -> list[Stmt]:
        ih = add(mul(add(oh0, Var("br")), sh), Const(-ph), mul(Var("kh"), dh))
        iw = add(mul(Var("bw"), sw), Const(-pw), mul(Var("kw"), dw))
        value: Expr = Load(geo.src, (Var("n"), Var("chan"), ih, iw))
        if geo.reads_padding:
            value = Select(in_image(ih, iw, geo.src_hw), value, Const(0.0))
        pixel = add(mul(Var("br"), ow_n), Var("bw"))
        setup = [
            *decompose(add(Var("t0"), Var("pj"))),
            Let("chan", add(mul(Var("g"), geo.cg), Var("ic"))),
        ]
        pack_loops = pixel_major_copy("panel", "pj", bj, nrows, ow_n, value, lanes, setup)
        grad = Load(
            gout,
            (
                Var("n"),
                add(mul(Var("g"), rows), Var("ib"), Var("ii")),
                add(oh0, Var("br")),
                Var("bw"),
            ),
        )
        micro = kept_tile_pass(
            rows // bi, bi, bj, nrows, ow_n, grad, Load("panel", (pixel, Var("jj"))), lanes
        )
        return [pack_loops, micro]

    per_image: list[Stmt] = []
    if full:
        per_image.append(Loop("band", full, band_pass(mul(Var("band"), band), band)))
    if rest:
        per_image += band_pass(Const(full * band), rest)
    body: list[Stmt] = [
        Local("wtile", (rows, bj)),
        Local("panel", (band * ow_n, bj)),
        Local("acc_tile", (bi, bj)),
        Let("g", Bin("/", Var("task"), Const(blocks))),
        Let("t0", Bin("min", mul(Bin("%", Var("task"), Const(blocks)), bj), Const(taps - bj))),
        *reduce_into_wtile(
            rows,
            rows,
            bj,
            lanes,
            Loop("n", batch, per_image),
            [*decompose(add(Var("t0"), Var("jj"))), Let("oc", add(mul(Var("g"), rows), Var("ii")))],
            finish,
        ),
    ]
    return [Loop("task", groups * blocks, body, ["parallel"])]


@dataclass(frozen=True)
class Phase:
    """The input pixels (a + sh*qh, b + sw*qw) of a strided input gradient, `offset` = (a, b)
    and `grid` = their (rows, cols): every one of them is reached by the same taps of the
    kernel, so together they are a stride-1 correlation of the output gradient (`geo`, its
    sub-kernel's tap (r, q) reading the weight's (row0 + r*rstep, col0 + q*cstep), `taps`),
    or, when no tap reaches them (a 1x1 kernel of stride 2 misses odd rows), zero (`geo`
    None)."""

    offset: tuple[int, int]
    grid: tuple[int, int]
    geo: ConvGeometry | None
    taps: tuple[int, int, int, int] = (0, 1, 0, 1)  # row0, rstep, col0, cstep

    @property
    def pixels(self) -> int:
        return self.grid[0] * self.grid[1]

    def block_cols(self, cols: int) -> int:
        return self.geo.block_cols if self.geo is not None else min(cols, self.pixels)


def conv_gemm_phases(
    phases: list[Phase],
    stride: tuple[int, int],
    tile: Tile,
    batch: int,
    groups: int,
    rows: int,
    a_load: Callable[[Phase, Expr, Expr, Expr, Expr], Expr],
    finish: Callable[[Expr, Expr, Expr, Expr], list[Stmt]],
    width: int,
) -> list[Stmt]:
    """A strided convolution's input gradient as one stride-1 implicit GEMM per output phase
    (the sub-pixel decomposition): a scatter of each output-gradient pixel into s*s-spaced
    input pixels becomes, seen from one phase of input pixels, a dense correlation with only
    the taps that reach it, so no multiply is spent on the zeros a zero-upsampled gradient
    would hold. Tasks over (image, group, column block), parallel; each runs block b of every
    phase (a phase with fewer blocks repeats its last one, which re-stores the same values)
    into the same on-chip panel and tiles. `a_load(phase, c, o, r, q)`: the weight of input
    channel row c, output-gradient channel o, sub-kernel tap (r, q); `finish(n, c, h, w)`
    consumes `acc_v` for each input-gradient element (of rows `width` wide). Input rows that
    no tap reaches at all (every other row of a 1x1 stride-2 kernel) are zeros written row
    by row, vectorised, instead of phase by phase at s-spaced columns."""
    live = [p for p in phases if p.pixels]
    # one block of columns a panel, as every phase's rows are (a task runs block b of each
    # phase, so phases must agree on the count: one phase of 14 rows a panel beside others
    # of one ran its single panel 14 times, 24 -> 186 ms for ResNet's layer3)
    rbs = [row_blocks(replace(p.geo, group_bytes=0)) if p.geo else None for p in live]
    counts = [
        -(-p.grid[0] // rb.rows) if rb else -(-p.pixels // p.block_cols(tile.cols))
        for p, rb in zip(live, rbs, strict=True)
        if p.geo is not None
    ] or [min(p.grid[0] for p in live)]  # all zero: a task per image row of the phases
    blocks = max(counts)
    convs = [p.geo for p in live if p.geo is not None]
    bj = max(tile.cols if rb else p.block_cols(tile.cols) for p, rb in zip(live, rbs, strict=True))
    n = Var("n")
    sh, sw = stride
    # a phase chunks on its own columns only if it would on the widest (chunks grow with them)
    chunked = any(panel_chunks(geo, bj) > 1 for geo in convs)
    taps = max((geo.taps for geo in convs), default=1)
    panel_blocks = max((rb.blocks(tile.cols) for rb in rbs if rb is not None), default=1)
    body: list[Stmt] = [
        *micro_kernel_locals(taps, rows, bj, tile, chunked, panel_blocks),
        Let("n", Bin("/", Var("task"), Const(groups * blocks))),
        Let("g", Bin("%", Bin("/", Var("task"), Const(blocks)), Const(groups))),
        Let("b", Bin("%", Var("task"), Const(blocks))),
    ]
    # row phases whose every column phase is zero: whole rows of zeros
    zero_rows = sorted(
        {p.offset[0] for p in live} - {p.offset[0] for p in live if p.geo is not None}
    )

    def zeros(label: str, hq: int, a: int, cols: int, w: Expr, tags: list[str]) -> None:
        """Zeros, through the epilogue, for this task's share of the hq rows a + s*q of a
        phase that no tap reaches, `cols` of them per row at columns `w` (of zr)."""
        share = -(-hq // blocks)
        q0 = Var(label)
        body.append(Let(label, Bin("min", mul(Var("b"), share), Const(hq - share))))
        h = add(Const(a), mul(add(q0, Var("zq")), sh))
        zero = [Let("acc_v", Const(0.0)), *finish(n, add(mul(Var("g"), rows), Var("ii")), h, w)]
        body.append(Loop("ii", rows, [Loop("zq", share, [Loop("zr", cols, zero, tags)])]))

    for a in zero_rows:  # whole rows, contiguous: vectorised
        hq = next(p.grid[0] for p in live if p.offset[0] == a)
        tags = [vectorize(tile.lanes)] if width >= tile.lanes else []
        zeros(f"z0_{a}", hq, a, width, Var("zr"), tags)
    for k, (phase, rb) in enumerate(zip(live, rbs, strict=True)):
        (a, b), (hq, wq) = phase.offset, phase.grid
        if a in zero_rows:
            continue

        def done(r: Expr, jj: Expr, p0: Expr, a: int = a, b: int = b, wq: int = wq):
            pixel = add(p0, jj)
            h = add(Const(a), mul(Bin("/", pixel, Const(wq)), sh))
            w = add(Const(b), mul(Bin("%", pixel, Const(wq)), sw))
            return finish(n, add(mul(Var("g"), rows), r), h, w)

        def weight(c: Expr, o: Expr, r: Expr, q: Expr, phase: Phase = phase) -> Expr:
            return a_load(phase, c, o, r, q)

        if rb is not None:  # whole-row panels of this phase's pixels (`conv_gemm_rows`)
            assert phase.geo is not None
            oh0 = Var(f"oh0_{k}")
            body.append(Let(oh0.name, Bin("min", mul(Var("b"), rb.rows), Const(hq - rb.rows))))
            for start in rb.starts:
                p0 = add(mul(oh0, wq), Const(start))
                body += pack_rows(phase.geo, rb, n, mul(Var("g"), phase.geo.cg), start, oh0)
                body += row_panel_micro_kernels(
                    phase.geo,
                    rb,
                    rows,
                    mul(Var("g"), rows),
                    weight,
                    lambda r, jj, p0=p0, done=done: done(r, jj, p0),
                    f"cb{k}",
                )
            continue
        if phase.geo is None:  # its columns b + s*r, among other phases' columns
            zeros(f"q0_{k}", hq, a, wq, add(Const(b), mul(Var("zr"), sw)), [])
            continue
        cols = phase.block_cols(tile.cols)
        p0 = Var(f"p0_{k}")
        body.append(Let(p0.name, Bin("min", mul(Var("b"), cols), Const(phase.pixels - cols))))
        body += pack(phase.geo, n, mul(Var("g"), phase.geo.cg), p0)
        body += micro_kernel(
            phase.geo,
            rows,
            mul(Var("g"), rows),
            weight,
            lambda r, jj, p0=p0, done=done: done(r, jj, p0),
        )
    return [Loop("task", batch * groups * blocks, body, ["parallel"])]


def weight_grad_channels(
    geo: ConvGeometry,
    batch: int,
    groups: int,
    rows: int,
    gout: str,
    finish: Callable[[Expr], list[Stmt]],
    cores: int,
    tile_bytes: int,
    max_local_bytes: int,
) -> list[Stmt] | None:
    """conv2d's weight gradient with output channels across the vectors: dW^T[tap, oc] = sum
    over (n, oh, ow) of x[n, tap @ (oh, ow)] * gout[n, oc, oh, ow]. `weight_grad_gemm` packs
    im2col (taps across), a scalar copy per tap and pixel that costs as much as the
    products when there are few output channels to amortise it over (measured on Zen 5: 40%
    of peak for 64 channels at 56x56). Here the micro-kernel broadcasts input values
    straight from a zero-padded copy of the band's input rows (`xpad`, vector row copies)
    and loads vectors of the output gradient transposed into `gT` (pixels down, a block of
    BJ channels across): the only scalar copy is that transpose, amortised over every tap.

    It pays where the taps outnumber the output channels (the transpose is amortised over
    the taps, the im2col pack over the channels): measured on Zen 5 at N=16, 64 channels
    3x3 at 56x56 1.65x faster, a 1x1 stride-2 shortcut of 64 -> 128 channels 1.6x slower.

    Tasks over (group, block of BJ output channels, range of taps), parallel; each keeps its
    taps x BJ block of dW^T in `wtile` over all images and bands of output rows, then
    `finish(value)` runs per weight element with `oc`, `ic`, `kh`, `kw` set. None when
    the on-chip buffers would pass `max_local_bytes`."""
    (oh_n, ow_n), (kh_n, kw_n) = geo.out_hw, geo.kernel
    (sh, sw), (ph, pw), (dh, dw) = geo.stride, geo.padding, geo.dilation
    h, w = geo.src_hw
    lanes, bj = geo.lanes, geo.tile.cols
    window = kh_n * kw_n
    oc_blocks = -(-rows // bj)
    # the taps one task sums: a range of them, split so that every core gets a task and
    # the kept block of dW^T stays within `tile_bytes` (it is re-read every band); the last
    # range is pulled back to end at the last tap (two tasks then write the same values)
    taps = geo.taps
    splits = 1
    while splits < taps and (
        groups * oc_blocks * splits < cores or -(-taps // splits) * bj * 4 > tile_bytes
    ):
        splits += 1
    part = -(-taps // splits)
    # a reduction into the kept wtile may not overlap, so the part is padded to whole tap
    # blocks: the padding taps read input channels past the real ones, zeros (3-channel
    # images have 147 or 363 taps: the largest dividing block, 3 rows, ran at half speed)
    bi = geo.tile.rows
    padded = -(-part // bi) * bi
    # xpad's channels: those a range of `padded` taps starting anywhere in a window touches
    channels = -(-(window - 1 + padded) // window)
    band = max(1, min(oh_n, geo.band_bytes // (4 * bj * ow_n)))
    full, rest = divmod(oh_n, band)
    wp = (ow_n - 1) * sw + (kw_n - 1) * dw + 1  # padded input columns one band reads
    rows_in = (band - 1) * sh + (kh_n - 1) * dh + 1
    if (padded * bj + band * ow_n * bj + channels * rows_in * wp + bi * bj) * 4 > max_local_bytes:
        return None

    def band_pass(oh0: Expr, nrows: int) -> list[Stmt]:
        rows_in = (nrows - 1) * sh + (kh_n - 1) * dh + 1
        # gT[pixel][oc]: the band's output gradient, transposed (scalar: the one copy)
        pixel = add(mul(Var("br"), ow_n), Var("bw"))
        grad = Load(gout, (Var("n"), add(Var("oc0"), Var("tj")), add(oh0, Var("br")), Var("bw")))
        transpose = pixel_major_copy("gT", "tj", bj, nrows, ow_n, grad, lanes)
        # xpad[ic][row][col]: the input rows the band reads, zero outside the image
        ih = add(mul(oh0, sh), Const(-ph), Var("xr"))
        lo, hi = max(0, pw), min(wp, w + pw)  # xpad columns inside the image
        # a channel past the group's (the padding taps' and a range's last) reads its last
        # channel and selects 0, as a row outside the image does
        last = add(mul(Var("g"), geo.cg), Const(geo.cg - 1))
        row_copy: list[Stmt] = [
            Let(
                "xrow_ok",
                Bin(
                    "&&", in_range(ih, h), Bin("<", add(Var("ic0"), Var("xc")), add(last, Const(1)))
                ),
            ),
            Let("xih", clamp(ih, h)),
            Let("xch", Bin("min", add(Var("ic0"), Var("xc")), last)),
        ]
        at = (Var("xc"), Var("xr"))
        if lo > 0:
            row_copy.append(
                Loop("xj", lo, [Store("xpad", (*at, Var("xj")), Const(0.0))], [vectorize(lanes)])
            )
        if hi > lo:
            source = Load(
                geo.src,
                (Var("n"), Var("xch"), Var("xih"), add(Var("xj"), Const(lo - pw))),
            )
            dst = (*at, add(Var("xj"), Const(lo)))
            row_copy.append(
                selected_run("xj", hi - lo, "xpad", dst, source, "xrow_ok", [vectorize(lanes)])
            )
        if wp > hi:
            row_copy.append(
                Loop(
                    "xj",
                    wp - hi,
                    [Store("xpad", (*at, add(Var("xj"), Const(hi))), Const(0.0))],
                    [vectorize(lanes)],
                )
            )
        pad_copy = Loop("xc", channels, [Loop("xr", rows_in, row_copy)])
        # the micro-kernel: BI taps (broadcast from xpad) x BJ channels (vectors of gT)
        tap = add(Var("toff"), Var("ib"), Var("ii"))  # counted from xpad's first channel
        value = Load(
            "xpad",
            (
                Bin("/", tap, Const(window)),
                add(mul(Var("br"), sh), mul(Bin("%", Bin("/", tap, Const(kw_n)), Const(kh_n)), dh)),
                add(mul(Var("bw"), sw), mul(Bin("%", tap, Const(kw_n)), dw)),
            ),
        )
        gvec = Load("gT", (pixel, Var("jj")))
        micro = kept_tile_pass(padded // bi, bi, bj, nrows, ow_n, value, gvec, lanes)
        return [transpose, pad_copy, micro]

    per_image: list[Stmt] = []
    if full:
        per_image.append(Loop("band", full, band_pass(mul(Var("band"), band), band)))
    if rest:
        per_image += band_pass(Const(full * band), rest)
    task = Var("task")
    body: list[Stmt] = [
        Local("wtile", (padded, bj)),
        Local("gT", (band * ow_n, bj)),
        Local("xpad", (channels, rows_in, wp)),
        Local("acc_tile", (bi, bj)),
        Let("g", Bin("/", task, Const(oc_blocks * splits))),
        Let(
            "oc0",
            add(
                mul(Var("g"), rows),
                Bin(
                    "min",
                    mul(Bin("%", Bin("/", task, Const(splits)), Const(oc_blocks)), bj),
                    Const(rows - bj),
                ),
            ),
        ),
        Let("t0", Bin("min", mul(Bin("%", task, Const(splits)), part), Const(taps - part))),
        Let("ic0", add(mul(Var("g"), geo.cg), Bin("/", Var("t0"), Const(window)))),
        Let("toff", Bin("%", Var("t0"), Const(window))),
        *reduce_into_wtile(
            padded,
            part,
            bj,
            lanes,
            Loop("n", batch, per_image),
            [
                Let("oc", add(Var("oc0"), Var("jj"))),
                Let("wt", add(Var("t0"), Var("ii"))),  # the tap, within the group
                Let("ic", Bin("/", Var("wt"), Const(window))),
                Let("kh", Bin("%", Bin("/", Var("wt"), Const(kw_n)), Const(kh_n))),
                Let("kw", Bin("%", Var("wt"), Const(kw_n))),
            ],
            finish,
        ),
    ]
    return [Loop("task", groups * oc_blocks * splits, body, ["parallel"])]
