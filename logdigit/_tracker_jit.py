"""Compiled kernel of the tracker's dynamic programming (:func:`logdigit.vectorise.viterbi_path`).

The same algorithm as the pure-Python loop there, step for step (the same costs, the
same order of comparisons, the same tie-breaking), on arrays, compiled by numba when
it is installed (``pip install 'logdigit[fast]'``): about 20x faster, and it releases
the GIL. Without numba, or with ``LOGDIGIT_JIT=0`` in the environment,
:func:`kernel` returns None and the tracker runs the Python loop; the tests check
that both give the same paths.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from numba import njit
except ImportError:    # the pure-Python loop stands in
    njit = None


def kernel():
    """The compiled kernel, or None (numba missing, or ``LOGDIGIT_JIT=0``)."""
    if njit is None or os.environ.get("LOGDIGIT_JIT", "1") == "0":
        return None
    return _viterbi


def _jit(f):
    if njit is None:
        return f
    try:   # compiled once, cached beside this file (or in numba's user cache dir)
        return njit(cache=True, nogil=True)(f)
    except RuntimeError:   # no writable cache location: compiled in each process
        return njit(nogil=True)(f)


@_jit
def _gap(s1, e1, s2, e2, period):
    d = max(0, s2 - e1, s1 - e2)
    if period and d:
        d = min(d, max(0, s2 + period - e1, s1 - e2 - period),
                max(0, s2 - period - e1, s1 - e2 + period))
    return d

@_jit
def _viterbi(s, e, ptr, em, brow, use_brow, period, miss, jc, slack, sw, sm, tele,
            drift, start, busy, nkeep):
    """(back int64 [K], end node): see vectorise._viterbi_python."""
    H = ptr.shape[0] - 1
    n = s.shape[0]
    cen = np.empty(n)
    wid = np.empty(n, np.int64)
    for j in range(n):
        cen[j] = (s[j] + e[j] - 1) * 0.5
        wid[j] = e[j] - s[j]
    cost = np.zeros(n)
    back = np.full(n, -1, np.int64)
    maxrow = 1
    for r in range(H):
        maxrow = max(maxrow, ptr[r + 1] - ptr[r])
    prev = np.empty(maxrow, np.int64)
    nprev = 0
    cap = nkeep + maxrow + 1
    gc = np.empty(cap)
    gi = np.empty(cap, np.int64)
    gl = np.empty(cap, np.int64)
    ng = 0
    plo = 0
    phi = 0
    for r in range(H):
        lo, hi = ptr[r], ptr[r + 1]
        if lo < hi:
            free = miss * r + start
            for j in range(lo, hi):
                sj, ej, cj, wj = s[j], e[j], cen[j], wid[j]
                best, bk = free, -1
                for q in range(nprev):      # cheapest first
                    i = prev[q]
                    ci = cost[i]
                    if ci >= best:
                        break
                    if period:
                        d = _gap(s[i], e[i], sj, ej, period)
                    else:
                        d = sj - e[i] if sj > e[i] else (s[i] - ej if s[i] > ej else 0)
                    dc = abs(cj - cen[i])
                    if period and dc > period / 2:
                        dc = period - dc
                    sl = slack + sw * (wj if wj < wid[i] else wid[i])
                    t = jc * (d - sl) if d > sl else 0.0
                    t = (tele if t > tele else t) + sm * dc
                    c = ci + t
                    if c < best:
                        best, bk = c, i
                for q in range(ng):
                    if gc[q] >= best:
                        break
                    i = gi[q]
                    if period:
                        d = _gap(s[i], e[i], sj, ej, period)
                    else:
                        d = sj - e[i] if sj > e[i] else (s[i] - ej if s[i] > ej else 0)
                    allow = slack + drift * gl[q]
                    t = jc * (d - allow) if d > allow else 0.0
                    c = gc[q] + (tele if t > tele else t)
                    if c < best:
                        best, bk = c, i
                cost[j] = best + em[j]
                back[j] = bk
        is_busy = brow[r] if use_brow else lo < hi
        mr = busy if is_busy else miss
        for q in range(ng):
            gc[q] += mr
            gl[q] += 1
        if plo < phi:
            for i in range(plo, phi):
                gc[ng] = cost[i] + mr
                gi[ng] = i
                gl[ng] = 1
                ng += 1
            for a in range(1, ng):      # sort by (cost, node, rows), as Python lists sort
                kc, ki, kl = gc[a], gi[a], gl[a]
                b = a - 1
                while b >= 0 and (gc[b] > kc or (gc[b] == kc and (
                        gi[b] > ki or (gi[b] == ki and gl[b] > kl)))):
                    gc[b + 1], gi[b + 1], gl[b + 1] = gc[b], gi[b], gl[b]
                    b -= 1
                gc[b + 1], gi[b + 1], gl[b + 1] = kc, ki, kl
            if ng > nkeep:
                ng = nkeep
        plo, phi = lo, hi
        nprev = 0
        for i in range(lo, hi):         # stable sort of this row's nodes by cost
            b = nprev - 1
            while b >= 0 and cost[prev[b]] > cost[i]:
                prev[b + 1] = prev[b]
                b -= 1
            prev[b + 1] = i
            nprev += 1
    end_node, end_cost = -1, np.inf
    if plo < phi:
        bi = plo
        for i in range(plo + 1, phi):
            if cost[i] < cost[bi]:
                bi = i
        end_node, end_cost = bi, cost[bi]
    if ng > 0 and gc[0] < end_cost:
        end_node = gi[0]
    return back, end_node

