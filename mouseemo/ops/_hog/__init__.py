"""Histogram of oriented gradients, equal to ``skimage.feature.hog`` and much faster (private parts).

The definition we reproduce (scikit-image >= 0.19, see ``docs/METHOD.md``):

1. The image is cast to float64 (float16/32 become float32), optionally square-rooted.
2. Gradients are central differences without the 1/2 factor, zero on the border rows/columns.
3. Each pixel votes its gradient magnitude into one orientation bin (hard binning, no interpolation):
   ``theta = rad2deg(arctan2(g_r, g_c)) % 180`` against the edges ``e_k = (180 / n) * k``; bin ``i`` is
   ``e_i <= theta < e_{i+1}``.
4. Cell value = sum of magnitudes per bin / pixels per cell; cells that do not fit are dropped.
5. Blocks of cells slide by one cell and are normalised (L1, L1-sqrt, L2, L2-Hys; eps = 1e-5).

**The bin rule, exactly.** ``arctan2`` is not correctly rounded and differs between backends (numpy's
AVX-512 SVML loop, glibc, Sleef in torch, CUDA), and near an edge its last bit decides the bin. The
reference is the installed scikit-image, whose bins follow the installed numpy's ``arctan2`` (so they
change with the CPU's SIMD). Two kinds of pixels sit near an edge: exact ties on the 0/45/90/135
degree edges (the only edges with a rational slope, by Niven's theorem), common in uint8 images,
which scikit-image puts in the upper bin because the rounded angle is exactly the edge; and, with
``transform_sqrt`` or float images, gradients whose direction lies within an ulp of an edge
(``(sqrt(12) - 3) / sqrt(3)`` is exactly ``tan 15``; ``10/255 - 7/255`` and ``100/255 - 97/255``
differ in the last bit). So:

* The fast paths test against the edges in float64, decide exact ties on the rational edges by
  exact comparisons (numpy's ``arctan2`` returns the rounded edge there), and send every pixel within
  1e-13 of the magnitude of an edge (a few per million pixels for square-root gradients, none for
  integer gradients) to :func:`numpy_bins`: numpy's ``arctan2`` of the same float64 gradients on the
  CPU, then ``rad2deg``, ``% 180`` and the edge test, exactly as scikit-image. uint8 frames without
  ``transform_sqrt`` have integer gradients; a 511 x 511 table of their bins (:func:`numpy_bins`) and
  magnitudes replaces the tests.
* :func:`exact_bins` is scikit-image's formula evaluated as if ``arctan2`` were correctly rounded,
  decided without computing an angle (it builds the CUDA kernel's constants). ``bin(RN(alpha))`` is a
  step function of the double ``RN(alpha)``; its steps are at doubles ``T_j`` (one set per half
  plane, found once by bisection over doubles with numpy's own ``rad2deg`` and ``% 180``
  arithmetic), and ``RN(alpha) >= T_j`` exactly when the exact angle ``alpha`` exceeds the midpoint
  ``M_j`` below ``T_j``: the sign of ``g_r cos M_j - g_c sin M_j``, computed with cos/sin as
  double-double numbers and error-free products.

**Speed on CPU.** Whole-batch tensors thrash the cache, so frames are cut into tiles of whole cells
(tens of thousands of pixels; see ``tiling._histograms_cpu`` for how they use several cores). The bin tests use the symmetry
of the edge set: signs of ``|g_r| - tan(e) |g_c|`` for the edges below 90 degrees, of ``|g_r| - |g_c|``
and of ``g_c``, ``g_r`` are packed into one integer code (one ``addmv``) whose bin comes from a table.
Per-cell sums are one ``scatter_add_``. On CUDA the same code runs on chunks of whole frames; with
cupy installed a fused kernel (:mod:`.cupy_kernel`) is used instead.

Magnitude sums are float64. scikit-image accumulates each cell serially in float32, so results agree
to ~1e-7 (not bit for bit) after normalisation.

Modules: :mod:`.params` (settings and sizes), :mod:`.bins` (the bin rule), :mod:`.index` (per-pixel
bins to per-cell slots), :mod:`.tiling` (tiles, threads, block normalisation), :mod:`.load` (how busy
the cores are), :mod:`.opencv` (the uint8 + square-root CPU path), :mod:`.cupy_kernel` (the fused CUDA
kernel) and :mod:`.api` (:func:`hog`, :class:`HOG`). The public names are re-exported by
:mod:`mouseemo.ops`.
"""
