"""Spatial Top-K sparsity (Li, Wen, Li, Lee, NeurIPS 2023, Section 3.1).

For a feature map ``X`` of shape ``(N, C, H, W)`` the Top-K set of channel ``(n, c)``
holds the entries with the K largest ``|X|`` over the ``H*W`` positions (Eq. 1), with
``K = max(1, floor(fraction * H * W))``, the same K as the paper's code
(``int(max(1, topk * h * w))``).

The paper's code leaves ties to ``torch.topk``. Here ``ties`` makes the choice explicit:

* ``ties="keep"`` (the default): **every entry tied at the threshold is kept**
  (Eq. 1 read with ``>=``), so a channel whose K-th and (K+1)-th largest ``|x|`` are
  equal keeps more than K entries. **A zero is never a Top-K response**: a channel
  with fewer than K non-zero entries (common after ReLU) keeps only those. Eq. 1's
  output is the same as with any choice of zeros; the mask, the gradient at those
  zeros and the mean of Eq. 2 become deterministic.
* ``ties="exact"``: **exactly K entries** per channel, as ``torch.topk`` in the paper
  code, zeros included when a channel has fewer than K non-zero entries. Among
  entries tied at the K-th largest ``|x|``, those with the **lowest flat spatial
  index** (``h * W + w``) are kept first. Eq. 2's mean is then the sum over K,
  as in the paper code.
* ``ties="random"``: **exactly K entries**, the entries tied at the K-th largest ``|x|``
  chosen uniformly at random (a seeded ``torch.Generator``): the same count as
  ``exact``, with no positional preference. Over several tie seeds it shows how much
  of a result rests on which tied entries a kernel happens to keep (the paper's
  numbers rest on CUDA's unspecified ``torch.topk`` order). The functions take the
  generator explicitly; :class:`TopK` holds one seeded by its ``tie_seed``.

For continuous activations ties have probability zero and both choices equal the
paper code's selection. Max-pools duplicate values, so real feature maps do tie
(``benchmarks/topk_ties.py`` counts how often).

How it is computed. ``|x|`` of a float is its bit pattern with the sign bit cleared,
and non-negative floats order like those bit patterns read as integers. So the
selection runs on integer keys: cheaper to compare than floats (no NaN handling),
and float16/bfloat16 select as 16-bit keys. On the CPU a compiled select
(``_topk_native.c``, built at install, called through ctypes) handles each row in
cache: a sampled histogram of the keys' top bits brackets the K-th largest, one pass
gathers the few keys inside the bracket, radix levels find the K-th among them, and
one more pass writes the mask, and for :func:`spatial_topk` Eq. 1's output with it,
so the forward reads ``x`` from memory once. Rows are spread over torch's own OpenMP
threads. Where the extension was not built (no C compiler at install) the same
selection runs in numpy, in row blocks that fit in cache on a thread pool of our own:
introselect (``ndarray.partition``) for the K-th largest key of each row, then a
compare into the mask. :func:`cpu_selection` says which one runs. Both fold the zero
rule into the threshold (at least the smallest positive key, 1), and with
``ties="exact"`` resolve further only the rows that have a tie. Elsewhere (CUDA, and
while ``torch.compile`` traces) the K-th largest comes from ``torch.topk(sorted=False)``
and ties are resolved with a cumulative count. The CPU choice was measured
(``benchmarks/topk_op.py --selection``, each float dtype): on a 2-core AMD EPYC the
compiled select beat numpy's introselect on integer keys, introselect on floats,
``torch.topk(sorted=False)`` and ``torch.kthvalue`` on every benchmark shape.

Backward saves one boolean mask (1 byte per element) and nothing else: the
selection runs without autograd, and the gradient is one ``where``: the incoming
gradient where the mask is set and exactly zero elsewhere.
"""

from __future__ import annotations

import ctypes
import importlib.util
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from topkshape.errors import ConfigError

Keep = Literal["topk", "non_topk"]
Ties = Literal["keep", "exact", "random"]
_KEEP_CHOICES = ("topk", "non_topk")
TIES: tuple[str, ...] = ("keep", "exact", "random")


def check_fraction(fraction: object) -> float:
    """Return ``fraction`` as a float, or raise ValueError naming the bad value."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"Top-K fraction must be a number in (0, 1], got {fraction!r}")
    value = float(fraction)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"Top-K fraction must be in (0, 1], got {fraction!r}")
    return value


def check_ties(ties: object) -> Ties:
    """Return ``ties`` if it is a valid tie rule, else raise a one-line ConfigError."""
    if ties not in TIES:
        raise ConfigError(f"Top-K ties must be one of {', '.join(TIES)} (keep every tied entry, exactly K in index order, "
                          f"or exactly K choosing among ties at random), got {ties!r}")
    return ties  # type: ignore[return-value]


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"Top-K expects a 4-D (N, C, H, W) tensor, got {shape}")


def _check_keep(keep: str) -> None:
    if keep not in _KEEP_CHOICES:
        raise ValueError(f"keep must be one of {_KEEP_CHOICES}, got {keep!r}")


def topk_count(fraction: float, positions: int) -> int:
    """K for a map of ``positions`` spatial entries: ``max(1, floor(fraction * positions))``."""
    return max(1, int(check_fraction(fraction) * positions))


# Integer type of the same width per float type, and the mask that clears the sign bit.
_KEY_DTYPES = {
    torch.float16: (torch.int16, np.int16),
    torch.bfloat16: (torch.int16, np.int16),
    torch.float32: (torch.int32, np.int32),
    torch.float64: (torch.int64, np.int64),
}


def _load_native() -> tuple[ctypes.CDLL | None, dict[torch.dtype, ctypes._CFuncPtr]]:
    """The compiled select (``_topk_native.c``) and its function per float dtype; ``(None, {})``
    where the extension was not built or does not load."""
    spec = importlib.util.find_spec("topkshape._topk_native")
    if spec is None or spec.origin is None:
        return None, {}
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:
        return None, {}
    library.topk_vector_bracket.argtypes = [ctypes.c_int]
    library.topk_vector_bracket.restype = ctypes.c_int
    library.topk_bracket_misses.restype = ctypes.c_int64
    library.topk_openmp.restype = ctypes.c_int
    functions = {}
    for dtype, (torch_int, _) in _KEY_DTYPES.items():
        function = getattr(library, f"topk_rows_u{torch_int.itemsize * 8}")
        # bits, mask, out (or NULL), rows, positions per row, k, exact, complement, threads
        function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int] * 3
        function.restype = ctypes.c_int
        functions[dtype] = function
    return library, functions


_NATIVE_LIBRARY, _NATIVE = _load_native()


def cpu_selection() -> str:
    """Which CPU selection runs: the compiled radix select (and whether its float32 bracket
    pass uses AVX-512), or numpy's introselect where the extension was not built."""
    if not _NATIVE:
        return "numpy introselect (compiled select not built)"
    vector = ", AVX-512 bracket pass" if _NATIVE_LIBRARY is not None and _NATIVE_LIBRARY.topk_vector_bracket(-1) else ""
    return f"compiled radix select{vector}"


def topk_mask(x: Tensor, fraction: float, ties: Ties = "keep", generator: torch.Generator | None = None) -> Tensor:
    """Boolean Top-K mask of ``x`` (Eq. 1's selection), same shape and layout as ``x``.

    ``ties="keep"``: true where ``|x|`` is non-zero and at least the K-th largest
    ``|x|`` of its sample and channel. ``ties="exact"``: exactly K entries per
    channel, ties at the threshold taken in flat spatial order. ``ties="random"``:
    exactly K, ties drawn from ``generator`` (a CPU ``torch.Generator``, required).
    Never tracks gradients.
    """
    _check_input(x)
    fraction = check_fraction(fraction)
    if check_ties(ties) == "random":
        if generator is None:
            raise ValueError("ties='random' needs a seeded torch.Generator (generator=...)")
        with torch.no_grad():
            return _shuffle_ties(x.detach(), topk_mask(x, fraction, "exact"), topk_count(fraction, x.shape[2] * x.shape[3]), generator)
    exact = ties == "exact"
    n, c, h, w = x.shape
    k = topk_count(fraction, h * w)
    with torch.no_grad():
        x = x.detach()
        if k >= h * w:
            return torch.ones_like(x, dtype=torch.bool) if exact else x != 0
        if x.device.type == "cpu" and x.dtype in _KEY_DTYPES and not torch.compiler.is_compiling():
            mask = _cpu_mask(x.contiguous(), k, exact)
            if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
                mask = mask.contiguous(memory_format=torch.channels_last)
            return mask
        return _torch_mask(x, k, exact)


def _tie_rows(x: Tensor, exact_mask: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per row (sample x channel): ``|x|``, the K-th largest, which entries tie with it, how many of
    those the K entries need, and the indices of the rows whose choice among ties is arbitrary."""
    n, c, h, w = x.shape
    magnitude = x.abs().reshape(n * c, h * w)
    threshold = magnitude.masked_fill(~exact_mask.reshape(n * c, h * w), float("inf")).amin(dim=1, keepdim=True)
    tied = magnitude == threshold
    need = k - (magnitude > threshold).sum(dim=1, keepdim=True)
    rows = (tied.sum(dim=1, keepdim=True) > need).squeeze(1).nonzero().squeeze(1)
    return magnitude, threshold, tied, need, rows


def tie_counts(x: Tensor, fraction: float) -> dict[str, int]:
    """How much of an exactly-K selection of ``x`` is decided by tie order.

    ``channels``: sample-channel rows; ``channels_with_ties``: rows with more entries tied at the
    K-th largest ``|x|`` than the K entries can take (so which are kept depends on the tie rule);
    ``kept``: entries kept (rows x K); ``kept_by_tie_order``: of those, the ones chosen among ties.
    The ``nonzero_`` counts are the same for the rows whose tie is at a non-zero ``|x|``: a choice
    among zeros changes no output of ``topk`` or ``non_topk`` (only ``mean_replace``'s), one among
    equal non-zero values changes them all.
    """
    _check_input(x)
    n, c, h, w = x.shape
    k = topk_count(check_fraction(fraction), h * w)
    counts = dict.fromkeys(TIE_COUNT_KEYS, 0) | {"channels": n * c, "kept": n * c * k}  # K <= H*W
    if k >= h * w:
        return counts
    with torch.no_grad():
        x = x.detach()
        _, threshold, _, need, rows = _tie_rows(x, topk_mask(x, fraction, "exact"), k)
        nonzero = rows[threshold[rows, 0] > 0]
        counts["channels_with_ties"] = int(rows.numel())
        counts["kept_by_tie_order"] = int(need[rows].sum()) if rows.numel() else 0
        counts["channels_with_nonzero_ties"] = int(nonzero.numel())
        counts["kept_by_nonzero_tie_order"] = int(need[nonzero].sum()) if nonzero.numel() else 0
    return counts


TIE_COUNT_KEYS = ("channels", "channels_with_ties", "kept", "kept_by_tie_order", "channels_with_nonzero_ties",
                  "kept_by_nonzero_tie_order")
"""What :func:`tie_counts` returns, in order."""


def _shuffle_ties(x: Tensor, exact_mask: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``exact_mask`` with each row's share of tied entries redrawn uniformly among all of them.

    In a row, every entry above the K-th largest ``|x|`` is kept; of the entries equal to it,
    ``need`` (K minus those above) are kept: those with the ``need`` smallest of i.i.d. uniform keys,
    a uniformly random subset. Keys are drawn on the CPU only for rows with more tied entries than
    ``need`` (other rows are already exact), so the draws do not depend on the device.
    """
    n, c, h, w = x.shape
    if k >= h * w:
        return exact_mask
    magnitude, threshold, tied, need, rows = _tie_rows(x, exact_mask, k)
    if rows.numel() == 0:
        return exact_mask
    mask = exact_mask.reshape(n * c, h * w)
    keys = torch.rand((rows.numel(), h * w), generator=generator).to(x.device)
    keys = keys.masked_fill(~tied[rows], 2.0)  # untied entries sort last
    rank = keys.argsort(dim=1).argsort(dim=1)
    redrawn = (magnitude[rows] > threshold[rows]) | (tied[rows] & (rank < need[rows]))
    mask = mask.clone()
    mask[rows] = redrawn
    out = mask.view(n, c, h, w)
    if not exact_mask.is_contiguous() and exact_mask.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _torch_mask(x: Tensor, k: int, exact: bool) -> Tensor:
    """The mask from torch ops only: any device, and traceable by ``torch.compile``."""
    n, c, h, w = x.shape
    magnitude = x.abs()
    threshold = kth_largest(magnitude.reshape(n * c, h * w), k).view(n, c, 1, 1)
    if not exact:
        # Raising a zero threshold to the smallest positive value drops exact zeros
        # in the same comparison (see the module docstring).
        smallest = torch.nextafter(threshold.new_zeros(()), threshold.new_ones(()))
        return magnitude >= torch.maximum(threshold, smallest)
    above = magnitude > threshold
    tied = (magnitude == threshold).reshape(n, c, h * w)
    need = k - above.sum(dim=(2, 3)).unsqueeze(2)
    first_tied = tied & (tied.cumsum(dim=2) <= need)
    return above | first_tied.view(n, c, h, w)


def kth_largest(rows: Tensor, k: int) -> Tensor:
    """The k-th largest value of each row of a 2-D tensor (values only, no indices).

    On the CPU (float types, not while compiling) numpy's introselect on row blocks
    across threads; elsewhere ``topk(sorted=False)`` then ``min``. The mask itself
    uses the faster integer-key path of :func:`topk_mask`; this serves other callers.
    """
    if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64) and not torch.compiler.is_compiling():
        array = rows.detach().contiguous().numpy()
        out = np.empty(array.shape[0], dtype=array.dtype)
        _run_in_threads(array, lambda part, lo, hi: _kth_rows(part, k, out[lo:hi]))
        return torch.from_numpy(out)
    return torch.topk(rows, k, dim=1, sorted=False).values.amin(dim=1)


def _kth_rows(rows: np.ndarray, k: int, out: np.ndarray) -> None:
    position = rows.shape[1] - k
    rows_per_block = max(1, _BLOCK_ELEMENTS // rows.shape[1])
    for start in range(0, rows.shape[0], rows_per_block):
        block = rows[start : start + rows_per_block]
        out[start : start + len(block)] = np.partition(block, position, axis=1)[:, position]


# Rows per block: about 128 K elements, so a block's key buffer stays in the L2 cache
# between the select and the compare (measured: smaller blocks pay Python overhead).
_BLOCK_ELEMENTS = 1 << 17
_PARALLEL_MIN_ELEMENTS = 1 << 16


def _cpu_mask(x: Tensor, k: int, exact: bool) -> Tensor:
    """Top-K mask of a contiguous CPU tensor, computed row by row on integer keys."""
    if x.dtype in _NATIVE:
        return _native_select(x, k, exact, complement=False, with_output=False)[0]
    n, c, h, w = x.shape
    torch_int, np_int = _KEY_DTYPES[x.dtype]
    bits = x.view(torch_int).numpy().reshape(n * c, h * w)
    mask = np.empty(bits.shape, dtype=np.bool_)
    magnitude_bits = np_int(np.iinfo(np_int).max)  # every bit but the sign
    _run_in_threads(bits, lambda part, lo, hi: _mask_rows(part, k, exact, magnitude_bits, mask[lo:hi]))
    return torch.from_numpy(mask).view(n, c, h, w)


def _mask_rows(bits: np.ndarray, k: int, exact: bool, magnitude_bits: np.integer, out: np.ndarray) -> None:
    """Fill ``out`` (rows x positions, bool) with the Top-K mask of the float rows ``bits``."""
    rows, length = bits.shape
    position = length - k
    rows_per_block = max(1, _BLOCK_ELEMENTS // length)
    buffer = np.empty((min(rows_per_block, rows), length), dtype=bits.dtype)
    for start in range(0, rows, rows_per_block):
        source = bits[start : start + rows_per_block]
        key = buffer[: len(source)]
        np.bitwise_and(source, magnitude_bits, out=key)
        key.partition(position, axis=1)
        kth = key[:, position].copy()
        # After the partition every entry left of ``position`` is <= the k-th key:
        # the row has more than k entries >= it exactly when one of those equals it.
        # (position >= 1: topk_mask answers k >= H*W without selecting.)
        tied = key[:, :position].max(axis=1) == kth if exact else None
        np.bitwise_and(source, magnitude_bits, out=key)
        if not exact:
            np.maximum(kth, 1, out=kth)  # the zero rule: a zero key never reaches the threshold
        block_out = out[start : start + len(source)]
        np.greater_equal(key, kth[:, None], out=block_out)
        if tied is not None and tied.any():
            block_out[tied] = _first_k_of_ties(key[tied], kth[tied], k)


def _native_select(x: Tensor, k: int, exact: bool, complement: bool, with_output: bool) -> tuple[Tensor, Tensor | None]:
    """The mask of kept entries (Top-K, or its complement) of a contiguous CPU tensor, by
    the compiled select, and with ``with_output`` the kept entries of ``x`` (zeros elsewhere).

    Both come from torch's allocator, like every other tensor of a training step, so that
    the memory settings a user gives torch (jemalloc, glibc's MALLOC_* variables; see the
    README's Performance section) apply to them too.
    """
    n, c, h, w = x.shape
    select = _NATIVE[x.dtype]
    positions, item = h * w, x.element_size()
    mask = torch.empty(x.shape, dtype=torch.bool)
    out = torch.empty(x.shape, dtype=x.dtype) if with_output else None
    mask_address = mask.data_ptr()
    out_address = None if out is None else out.data_ptr()

    def work(part: np.ndarray, lo: int, hi: int, threads: int = 1) -> None:
        lo, rows = int(lo), int(hi - lo)  # numpy integers from the row split: ctypes wants ints
        out_rows = None if out_address is None else out_address + lo * positions * item
        status = select(part.ctypes.data, mask_address + lo * positions, out_rows, rows, positions, k, exact, complement, threads)
        if status == -2:
            raise ValueError(f"Top-K: K = {k} is outside 1..{positions}, the positions per channel")
        if status != 0:
            raise MemoryError(f"Top-K: no memory for the selection buffers of {positions} positions")

    rows = x.view(_KEY_DTYPES[x.dtype][0]).numpy().reshape(n * c, positions)
    if _NATIVE_LIBRARY is not None and _NATIVE_LIBRARY.topk_openmp():
        # On torch's OpenMP threads (see topk_rows in _topk_native.c), split as _run_in_threads would.
        work(rows, 0, len(rows), threads=_thread_count(rows))
    else:
        _run_in_threads(rows, work)
    return mask, out


def _first_k_of_ties(key: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Exactly k per row: every key above the k-th, then tied keys in index order."""
    above = key > kth[:, None]
    tied = key == kth[:, None]
    need = k - np.count_nonzero(above, axis=1)
    return above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= need[:, None]))


def _thread_count(rows: np.ndarray) -> int:
    """Threads for a selection over ``rows``: torch's count, but 1 for small inputs and never
    more than one per row."""
    if rows.size < _PARALLEL_MIN_ELEMENTS:
        return 1
    return max(1, min(torch.get_num_threads(), rows.shape[0]))


def _run_in_threads(rows: np.ndarray, work) -> None:
    """Run ``work(rows[lo:hi], lo, hi)`` on contiguous row ranges, one per thread."""
    threads = _thread_count(rows)
    if threads <= 1:
        work(rows, 0, rows.shape[0])
        return
    bounds = np.linspace(0, rows.shape[0], threads + 1).astype(int)
    pool = _thread_pool(threads, os.getpid())
    futures = [pool.submit(work, rows[lo:hi], lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    for future in futures:
        future.result()


@lru_cache(maxsize=4)
def _thread_pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per process: a forked DataLoader worker must not reuse its parent's."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"topk-select-{pid}")


class _MaskedIdentity(torch.autograd.Function):
    """``x`` where ``mask``, 0 elsewhere; the gradient passes only where ``mask``."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        return torch.where(mask, x, x.new_zeros(()))

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, grad.new_zeros(())), None


class _SelectedCopy(torch.autograd.Function):
    """Eq. 1 (or its complement) in one compiled pass that writes the output and the mask."""

    @staticmethod
    def forward(ctx, x: Tensor, k: int, exact: bool, complement: bool) -> Tensor:  # type: ignore[override]
        mask, out = _native_select(x, k, exact, complement, with_output=True)
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, grad.new_zeros(())), None, None, None


class _MaskedMean(torch.autograd.Function):
    """Eq. 2: every masked entry of a channel becomes the mean of the masked entries.

    ``out[p] = m[p] * sum_q m[q] x[q] / n`` with ``n = sum_q m[q]``, so
    ``d loss / d x[q] = m[q] * sum_p m[p] g[p] / n``: each kept entry receives the
    channel's average kept gradient. Saves the mask and the (N, C) counts only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        count = mask.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        zero = x.new_zeros(())
        # Accumulate in float32 at least: fp16 channel sums overflow easily.
        acc_dtype = torch.promote_types(x.dtype, torch.float32)
        total = torch.where(mask, x, zero).sum(dim=(2, 3), keepdim=True, dtype=acc_dtype)
        mean = (total / count).to(x.dtype)
        ctx.save_for_backward(mask, count)
        return torch.where(mask, mean, zero)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        mask, count = ctx.saved_tensors
        zero = grad.new_zeros(())
        acc_dtype = torch.promote_types(grad.dtype, torch.float32)
        total = torch.where(mask, grad, zero).sum(dim=(2, 3), keepdim=True, dtype=acc_dtype)
        mean_grad = (total / count).to(grad.dtype)
        return torch.where(mask, mean_grad, zero), None


def spatial_topk(x: Tensor, fraction: float, keep: Keep = "topk", ties: Ties = "keep",
                 generator: torch.Generator | None = None) -> Tensor:
    """Eq. 1 (``keep="topk"``) or its complement (``keep="non_topk"``).

    ``non_topk`` keeps every entry outside the Top-K set: the paper's "revert"
    ablation. ``fraction == 1.0`` with ``keep="topk"`` returns ``x`` unchanged.
    ``ties`` (and ``generator`` for ``"random"``) as in :func:`topk_mask`.
    """
    _check_input(x)
    _check_keep(keep)
    check_ties(ties)
    fraction = check_fraction(fraction)
    if fraction == 1.0 and keep == "topk":
        return x
    k = topk_count(fraction, x.shape[2] * x.shape[3])
    fused = x.device.type == "cpu" and x.dtype in _NATIVE and x.is_contiguous() and not torch.compiler.is_compiling()
    if fused and ties != "random" and k < x.shape[2] * x.shape[3]:  # K >= H*W selects nothing: topk_mask answers it
        return _SelectedCopy.apply(x, k, ties == "exact", keep == "non_topk")
    return _keep_masked(x, topk_mask(x, fraction, ties, generator), keep)


def _keep_masked(x: Tensor, mask: Tensor, keep: Keep) -> Tensor:
    return _MaskedIdentity.apply(x, ~mask if keep == "non_topk" else mask)


def spatial_topk_mean_replace(x: Tensor, fraction: float, ties: Ties = "keep", generator: torch.Generator | None = None) -> Tensor:
    """Eq. 2: Top-K positions carry their channel's mean Top-K value, others 0."""
    _check_input(x)
    return _MaskedMean.apply(x, topk_mask(x, fraction, ties, generator))


class TopK(nn.Module):
    """Spatial Top-K layer (Eq. 1), or its complement with ``keep="non_topk"``.

    ``ties`` is ``"keep"`` (every entry tied at the threshold), ``"exact"`` (exactly
    K, lowest spatial index first among ties; the paper code's count) or ``"random"``
    (exactly K, ties drawn from the layer's generator: seeded by ``tie_seed``, it
    advances with every call, so a fixed sequence of inputs gives a fixed sequence of
    masks; :meth:`reseed` starts it over). Set ``record_mask = True`` to keep the last
    boolean mask in ``last_mask`` (the mask-dynamics figures read it); off by default
    to hold no memory.
    """

    def __init__(self, fraction: float, keep: Keep = "topk", ties: Ties = "keep", tie_seed: int = 0) -> None:
        super().__init__()
        _check_keep(keep)
        self.fraction = check_fraction(fraction)
        self.keep: Keep = keep
        self.ties: Ties = check_ties(ties)
        self.tie_generator = torch.Generator().manual_seed(tie_seed) if ties == "random" else None
        self.record_mask = False
        self.last_mask: Tensor | None = None

    def reseed(self, tie_seed: int) -> None:
        """Start the tie draws over from ``tie_seed`` (``ties="random"`` only; others have none)."""
        if self.tie_generator is not None:
            self.tie_generator.manual_seed(tie_seed)

    def forward(self, x: Tensor) -> Tensor:
        if not self.record_mask:
            return spatial_topk(x, self.fraction, self.keep, self.ties, self.tie_generator)
        self.last_mask = topk_mask(x, self.fraction, self.ties, self.tie_generator)
        if self.fraction == 1.0 and self.keep == "topk":
            return x  # the identity, as spatial_topk
        return _keep_masked(x, self.last_mask, self.keep)

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, keep={self.keep!r}, ties={self.ties!r}"


class TopKMeanReplace(nn.Module):
    """Top-K with mean replacement (Eq. 2): keeps where, not how much."""

    def __init__(self, fraction: float, ties: Ties = "keep", tie_seed: int = 0) -> None:
        super().__init__()
        self.fraction = check_fraction(fraction)
        self.ties: Ties = check_ties(ties)
        self.tie_generator = torch.Generator().manual_seed(tie_seed) if ties == "random" else None
        self.record_mask = False
        self.last_mask: Tensor | None = None

    def reseed(self, tie_seed: int) -> None:
        """Start the tie draws over from ``tie_seed`` (``ties="random"`` only)."""
        if self.tie_generator is not None:
            self.tie_generator.manual_seed(tie_seed)

    def forward(self, x: Tensor) -> Tensor:
        if not self.record_mask:
            return spatial_topk_mean_replace(x, self.fraction, self.ties, self.tie_generator)
        self.last_mask = topk_mask(x, self.fraction, self.ties, self.tie_generator)
        return _MaskedMean.apply(x, self.last_mask)

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, ties={self.ties!r}"
