"""Layered-earth model: beds, gradational transitions and tool noise per curve family.

A page samples one bed sequence (lithology, porosity, hydrocarbon flag per bed)
on a regular depth grid; every curve family turns it into values with its own
response, vertical resolution and noise, so curves on one page are correlated
the way real logs are (GR high where resistivity is low, and so on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: depth-grid step of the model, in feet
MODEL_STEP_FT = 0.25

LITHOLOGIES = ("shale", "sand", "lime", "coal")
_LITH_P = np.array([0.45, 0.35, 0.16, 0.04])


@dataclass(frozen=True)
class Family:
    """A curve family: mnemonics, unit, plotted scales and value model.

    ``scales`` entries are ``(left, right, scale)``; ``wrap_ok`` says printed logs
    show this family with backup traces.
    """

    name: str
    mnemonics: tuple[str, ...]
    unit: str
    scales: tuple[tuple[float, float, str], ...]
    wrap_ok: bool
    resolution_ft: float     # tool vertical resolution (gaussian sigma, ft)
    noise: float             # relative noise amplitude (fraction of scale span)


FAMILIES: dict[str, Family] = {
    "GR": Family("GR", ("GR", "SGR", "CGR"), "GAPI",
                 ((0, 150, "linear"), (0, 100, "linear"), (0, 200, "linear"), (0, 120, "linear")),
                 True, 0.8, 0.025),
    "SP": Family("SP", ("SP",), "MV",
                 ((-160, -60, "linear"), (-100, 0, "linear"), (-80, 20, "linear"),
                  (-200, 0, "linear"), (-120, 30, "linear")),
                 False, 1.5, 0.006),
    "CALI": Family("CALI", ("CALI", "CAL", "HCAL"), "IN",
                   ((6, 16, "linear"), (6, 26, "linear"), (4, 14, "linear")),
                   False, 0.5, 0.004),
    "RES": Family("RES", ("ILD", "ILM", "SFLU", "LLD", "LLS", "MSFL", "RT", "RXO", "SN", "LN"), "OHMM",
                  ((0.2, 2000, "log"), (0.2, 200, "log"), (1, 1000, "log"), (2, 2000, "log"),
                   (0.2, 20, "log"), (1, 100, "log"), (0.1, 1000, "log")),
                  True, 1.6, 0.01),
    "RESLIN": Family("RESLIN", ("RES", "ILD", "SN", "LN", "R16", "R64"), "OHMM",
                     ((0, 20, "linear"), (0, 50, "linear"), (0, 10, "linear"), (0, 100, "linear")),
                     True, 1.6, 0.01),
    "RHOB": Family("RHOB", ("RHOB", "ZDEN", "DEN"), "G/C3",
                   ((1.95, 2.95, "linear"), (2.0, 3.0, "linear"), (1.7, 2.7, "linear")),
                   False, 0.6, 0.012),
    "NPHI": Family("NPHI", ("NPHI", "CNC", "TNPH", "NPOR"), "V/V",
                   ((0.45, -0.15, "linear"), (0.6, 0.0, "linear"), (0.3, -0.1, "linear")),
                   True, 0.8, 0.015),
    "DT": Family("DT", ("DT", "AC", "DTCO"), "US/F",
                 ((140, 40, "linear"), (150, 50, "linear"), (189, 40, "linear")),
                 False, 1.0, 0.01),
}

#: families that share a linear track, and the resistivity families of log tracks
LINEAR_GROUPS: tuple[tuple[str, ...], ...] = (
    ("GR", "SP", "CALI"), ("RHOB", "NPHI", "DT"), ("RESLIN", "RESLIN", "SP"),
    ("GR", "NPHI", "RHOB", "CALI"),
)
LOG_GROUP: tuple[str, ...] = ("RES", "RES", "RES", "RES")


@dataclass
class Beds:
    """A bed sequence on the model depth grid.

    ``depth_ft``: float64 [N] grid depths (ft); ``lith``: int [N] lithology index;
    ``phi``: float64 [N] porosity; ``hc``: float64 [N] 1 where hydrocarbon-bearing;
    ``ramp``: float64 [N] -0.5..0.5 position inside a gradational bed;
    ``bed``: int [N] bed index; ``vsh``: float64 [N] shale volume 0..1 (blocky per bed,
    with in-bed trends); ``texture``: float64 [N] unit-variance geological
    heterogeneity at several scales, shared by all curves (so curves on a page
    wiggle together where the rock does).
    """

    depth_ft: np.ndarray
    lith: np.ndarray
    phi: np.ndarray
    hc: np.ndarray
    ramp: np.ndarray
    bed: np.ndarray
    vsh: np.ndarray
    texture: np.ndarray


def bed_thicknesses(rng: np.random.Generator, span_ft: float) -> np.ndarray:
    """Bed thicknesses (ft) covering at least ``span_ft``: thin beds common, thick ones rare.

    A lognormal with a per-page median of 1.5-6 ft (sigma 0.9), floored at 0.5 ft,
    mixed with a few thick (10-80 ft) massive beds.
    """
    median = rng.uniform(1.5, 6.0)
    nb = int(span_ft / (median * 0.6)) + 8
    thick = np.maximum(0.5, median * rng.lognormal(0.0, 0.9, nb))
    massive = rng.random(nb) < 0.04
    thick[massive] = rng.uniform(10.0, 80.0, int(massive.sum()))
    while thick.sum() < span_ft:   # rare: extend
        thick = np.append(thick, median)
    return thick


def sample_beds(rng: np.random.Generator, top_ft: float, bottom_ft: float) -> Beds:
    """Bed sequence between ``top_ft`` and ``bottom_ft`` (with margins).

    Beds group into packages (20-200 ft) with their own sand / lime / coal odds,
    so a page shows thick shaly intervals with thin sand stringers as well as
    clean sand-rich ones; within a package a bed's lithology is drawn
    independently (but most thin beds repeat the bed above with a small change),
    its shale volume varies around its lithology's value and 30 % of beds fine or
    coarsen upward.
    """
    top, bottom = top_ft - 20.0, bottom_ft + 20.0
    n = int(np.ceil((bottom - top) / MODEL_STEP_FT)) + 1
    depth = top + MODEL_STEP_FT * np.arange(n)
    thick = bed_thicknesses(rng, bottom - top)
    edges = top + np.concatenate([[0.0], np.cumsum(thick)])
    nbeds = len(edges) - 1
    centre = 0.5 * (edges[:-1] + edges[1:])
    # packages: lithology odds per package
    pk_edges = top + np.cumsum(rng.uniform(20.0, 200.0, int((bottom - top) / 20.0) + 2))
    pk = np.searchsorted(pk_edges, centre)
    npk = int(pk.max()) + 1
    p_pk = rng.dirichlet(4.0 * _LITH_P, npk)
    u = rng.random(nbeds)
    lith_b = np.minimum((u[:, None] > np.cumsum(p_pk[pk], axis=1)).sum(1), len(LITHOLOGIES) - 1)
    phi_b = np.where(lith_b == 1, rng.uniform(0.08, 0.32, nbeds),
                     np.where(lith_b == 2, rng.uniform(0.0, 0.15, nbeds), rng.uniform(0.2, 0.4, nbeds)))
    hc_b = ((lith_b == 1) & (rng.random(nbeds) < 0.3)).astype(np.float64)
    vsh_b = np.select([lith_b == 0, lith_b == 1, lith_b == 2], [rng.uniform(0.6, 1.0, nbeds),
                      rng.beta(1.2, 4.0, nbeds) * 0.6, rng.uniform(0.0, 0.25, nbeds)], 0.3)
    # thin beds mostly repeat the rock of the bed above with a small change (interbedded
    # heterolithics), so most thin-bed boundaries are low-contrast wiggles, not full swings
    like = (thick[:nbeds] < rng.uniform(2.0, 4.0)) & (rng.random(nbeds) < rng.uniform(0.4, 0.8))
    dv, dp = rng.normal(0.0, 0.08, nbeds), rng.normal(0.0, 0.02, nbeds)
    for i in np.flatnonzero(like[1:]) + 1:
        lith_b[i], hc_b[i] = lith_b[i - 1], hc_b[i - 1]
        vsh_b[i] = min(1.0, max(0.0, vsh_b[i - 1] + dv[i]))
        phi_b[i] = min(0.4, max(0.0, phi_b[i - 1] + dp[i]))
    grad_b = rng.random(nbeds) < 0.3  # gradational (fining/coarsening) beds
    bed = np.searchsorted(edges, depth, side="right") - 1
    bed = np.clip(bed, 0, nbeds - 1)
    pos = (depth - edges[bed]) / np.maximum(edges[bed + 1] - edges[bed], 1e-6) - 0.5
    ramp = np.where(grad_b[bed], pos * rng.choice([-1.0, 1.0], nbeds)[bed], 0.0)
    vsh = np.clip(vsh_b[bed] + 0.5 * ramp * (lith_b[bed] != 0), 0.0, 1.0)
    texture = multiscale_noise(rng, n, (0.75, 3.0, 12.0, 40.0), (0.6, 1.0, 0.8, 0.5))
    return Beds(depth, lith_b[bed], phi_b[bed], hc_b[bed], ramp, bed, vsh, texture)


def _smooth(x: np.ndarray, sigma_ft: float) -> np.ndarray:
    """Gaussian smoothing along the model grid (``sigma_ft`` in ft; edges held)."""
    s = sigma_ft / MODEL_STEP_FT
    if s < 0.3:
        return x
    r = int(3 * s) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    xp = np.pad(x, r, mode="edge")
    return np.convolve(xp, k, mode="valid")


def _noise(rng: np.random.Generator, n: int, corr_samples: float) -> np.ndarray:
    """Unit-variance correlated noise of length n (gaussian correlation of ``corr_samples``)."""
    w = rng.standard_normal(n)
    if corr_samples > 0.5:
        w = _smooth(w, corr_samples * MODEL_STEP_FT)
        w /= max(w.std(), 1e-6)
    return w


def corr_noise(rng: np.random.Generator, n: int, scale_ft: float) -> np.ndarray:
    """Unit-variance noise of length ``n`` correlated over about ``scale_ft``.

    Drawn on a coarse grid (a third of the scale), smoothed there and
    interpolated, so long correlation lengths cost no long convolutions.
    """
    step = max(MODEL_STEP_FT, scale_ft / 3.0)
    m = int(n * MODEL_STEP_FT / step) + 4
    c = rng.standard_normal(m)
    if m > 3:
        c = np.convolve(np.pad(c, 2, mode="wrap"), [0.06, 0.24, 0.4, 0.24, 0.06], mode="valid")
    x = np.arange(n) * (MODEL_STEP_FT / step)
    out = np.interp(x, np.arange(m), c)
    return out / max(out.std(), 1e-6)


def multiscale_noise(rng: np.random.Generator, n: int, scales_ft: tuple[float, ...],
                     weights: tuple[float, ...]) -> np.ndarray:
    """Unit-variance sum of :func:`corr_noise` at several scales (character at several scales)."""
    out = np.zeros(n)
    for s, w in zip(scales_ft, weights):
        out += w * corr_noise(rng, n, s)
    return out / max(out.std(), 1e-6)


def gradational(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Blocky bed values -> steep but gradational transitions of varied width.

    Blends a sharp (0.3-0.6 ft sigma) and a soft (0.7-1.5 ft) smoothing with a
    weight that wanders along the well (30 ft scale): bed boundaries ramp over
    roughly 1-4 ft (10-90 %), differently from boundary to boundary.
    """
    sharp = _smooth(x, rng.uniform(0.3, 0.6))
    soft = _smooth(x, rng.uniform(0.7, 1.5))
    w = np.clip(0.5 + 0.35 * corr_noise(rng, len(x), 30.0), 0.0, 1.0)
    return sharp + w * (soft - sharp)


def _bed_spikes(rng: np.random.Generator, n: int, per_100ft: float, width_ft: tuple[float, float]) -> np.ndarray:
    """Sparse thin-bed peaks (0..1 height, random sign left to the caller): float64 [n]."""
    k = rng.poisson(per_100ft * n * MODEL_STEP_FT / 100.0)
    out = np.zeros(n)
    if k == 0:
        return out
    at = rng.integers(0, n, k)
    hw = (rng.uniform(*width_ft, k) / MODEL_STEP_FT / 2).astype(int) + 1
    amp = rng.uniform(0.3, 1.0, k)
    for a, h, m in zip(at.tolist(), hw.tolist(), amp.tolist()):
        sl = slice(max(0, a - h), min(n, a + h + 1))
        out[sl] = np.maximum(out[sl], m * np.hanning(2 * h + 3)[1:-1][: sl.stop - sl.start])
    return out


def family_fraction(rng: np.random.Generator, fam: Family, beds: Beds, left: float, right: float,
                    scale: str, wrap: bool, wiggle: float = 1.0) -> np.ndarray:
    """Position of one curve across its track on the model grid: float64 [N].

    The curve is built in plot-fraction space of the chosen scale (0 = left
    edge, 1 = right edge; the way a logging engineer sets a scale up so the curve
    uses the track); the caller maps it to values with
    :func:`logdigit.calibration.fraction_to_value`. Off-scale excursions
    (fractions outside 0..1) are kept only when ``wrap``; otherwise the pen is
    pinned just inside the track edge. ``wiggle`` scales the small-scale tool
    noise (old analogue recordings: 1-2, clean digital prints: ~0.5).

    Per family: GR follows shale volume with counting-statistics noise (larger
    where the count rate is high); SP is smooth with a drifting baseline and
    rounded boundaries; resistivity is log-normal (noise in log10 space) with
    thin resistive streaks, the deep readings smoother than the shallow ones;
    CALI sits near bit size with washouts in some shales and thin mud cake on
    sands; density, neutron and sonic follow lithology and porosity with their
    own noise (sonic with rare cycle skips). Every curve shares the rock's
    multi-scale ``texture``, so it wiggles continuously inside beds.
    """
    n = len(beds.depth_ft)
    lith, phi, hc = beds.lith, beds.phi, beds.hc
    is_sh, is_sd, is_lm, is_co = (lith == 0), (lith == 1), (lith == 2), (lith == 3)
    nbed = int(beds.bed.max()) + 1
    bed_jit = rng.standard_normal(nbed)[beds.bed]
    tex = beds.texture
    vsh = np.clip(beds.vsh + rng.uniform(0.04, 0.12) * tex, 0.0, 1.0)
    name = fam.name
    res_sigma = fam.resolution_ft * rng.uniform(0.6, 1.4)     # tool vertical resolution
    amp = fam.noise * rng.uniform(0.5, 1.3) * wiggle          # tool noise (fraction of the track)
    # base position across the track (0..1 fraction of the chosen scale)
    if name == "GR":
        f = 0.1 + 0.62 * vsh + 0.04 * bed_jit - 0.05 * is_co
        if wrap:   # radioactive ("hot") shale intervals, a few % of the well, go off scale
            hot = (corr_noise(rng, n, rng.uniform(10.0, 30.0)) > rng.uniform(1.4, 2.2)) & is_sh
            f = f + hot * rng.uniform(0.5, 0.9)
        f = gradational(rng, f)
        # counting statistics: noise grows with the count rate, correlated over the time constant
        stat = _smooth(rng.standard_normal(n), rng.uniform(0.25, 0.6))
        stat /= max(stat.std(), 1e-6)
        f = f + 0.9 * amp * np.sqrt(np.clip(f, 0.05, 2.0)) * stat
        res_sigma *= 0.5
        amp *= 0.5
    elif name == "SP":
        base = rng.uniform(0.65, 0.85)
        sand = (1.0 - vsh) * (0.15 + 1.6 * phi * is_sd) + is_lm * 0.05
        f = base - sand * rng.uniform(0.7, 1.3) + 0.015 * bed_jit
        f = _smooth(f, rng.uniform(1.0, 2.5))                 # SP boundaries are rounded
        f += rng.uniform(0.03, 0.12) * corr_noise(rng, n, rng.uniform(80.0, 300.0))   # baseline drift
        f += np.linspace(0, rng.uniform(-0.1, 0.1), n)
        f += 0.01 * corr_noise(rng, n, 6.0)
        amp *= 0.5
    elif name == "CALI":
        bit = rng.uniform(0.15, 0.3)
        # washouts: zones (tens of ft) of enlarged hole in shales and coals
        zone = corr_noise(rng, n, rng.uniform(15.0, 40.0)) > rng.uniform(0.3, 1.5)
        washed = zone & (is_sh | is_co)
        depth_w = rng.uniform(0.03, 0.3) * np.clip(0.7 + 0.4 * corr_noise(rng, n, 4.0), 0.1, 1.6)
        f = bit + washed * depth_w - is_sd * rng.uniform(0.005, 0.02)
        f = gradational(rng, f)
        # rugosity: small wiggles even in gauge hole, larger in washouts
        f += rng.uniform(0.005, 0.012) * multiscale_noise(rng, n, (1.0, 5.0), (0.7, 1.0))
        f += 0.01 * washed * corr_noise(rng, n, 0.7)
        amp *= 0.5
    elif name in ("RES", "RESLIN"):
        # Archie-ish resistivity in ohm.m, log-normal around the bed values
        rw = rng.uniform(0.03, 0.15)
        sw = np.where(hc > 0, rng.uniform(0.15, 0.4), 1.0)
        rt_sd = rw / np.maximum(phi, 0.03) ** 2 / sw ** 2
        rsh = rng.uniform(1.0, 6.0)
        rt = np.select([is_sh, is_sd, is_lm, is_co],
                       [rsh * np.ones(n), rt_sd, np.maximum(100.0 + 800.0 * (0.15 - phi) / 0.15, 20.0),
                        300.0 * np.ones(n)])
        lr = np.log10(rt) * (1.0 - 0.5 * vsh * ~is_sh) + np.log10(rsh) * 0.5 * vsh * ~is_sh
        lr = lr + 0.12 * bed_jit + rng.uniform(0.03, 0.1) * tex
        streak = rng.uniform(0.4, 1.2) if scale == "log" else rng.uniform(0.1, 0.35)   # decades
        lr = lr + streak * _bed_spikes(rng, n, rng.uniform(0.5, 4.0), (0.5, 3.0))
        shallow = rng.random() < 0.4       # MSFL / SN / RXO: sharper and noisier than deep readings
        lr = gradational(rng, lr)
        lr = _smooth(lr, rng.uniform(0.2, 0.6) if shallow else rng.uniform(0.8, 2.0))
        lr = lr + (0.012 if shallow else 0.004) * wiggle * corr_noise(rng, n, 1.0)
        amp *= 0.5 if shallow else 0.25
        rt = 10.0 ** lr
        lo, hi = (min(left, right), max(left, right))
        if scale == "log":
            f = (lr - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
        else:   # linear: the engineer picks the scale so most of the log sits inside the track;
            # low (shale) readings still wiggle by a few % of the track
            f = rt / max(float(np.percentile(rt, 90)), 1e-6) * rng.uniform(0.45, 0.85)
            f = f + rng.uniform(0.008, 0.025) * multiscale_noise(rng, n, (1.0, 4.0), (0.6, 1.0))
            if not wrap:   # no backup trace: high readings crowd the right edge (soft limit)
                f = np.where(f > 0.8, 0.8 + 0.17 * np.tanh((f - 0.8) / 0.17), f)
        res_sigma = 0.0
    elif name == "RHOB":
        rho = np.select([is_sh, is_sd, is_lm, is_co],
                        [2.45 + 0 * phi, 2.65 - 1.65 * phi, 2.71 - 1.71 * phi, 1.4 + 0 * phi])
        rho = rho - hc * 0.08 + 0.02 * bed_jit + 0.02 * tex
        f = gradational(rng, (rho - left) / (right - left))
    elif name == "NPHI":
        nphi = np.select([is_sh, is_sd, is_lm, is_co], [0.38 + 0 * phi, phi - hc * 0.08, phi, 0.5 + 0 * phi])
        nphi = nphi + 0.1 * vsh * ~is_sh + 0.015 * bed_jit + 0.015 * tex
        f = gradational(rng, (nphi - left) / (right - left))
    elif name == "DT":
        dt = np.select([is_sh, is_sd, is_lm, is_co],
                       [105 + 0 * phi, 55.5 + 130 * phi, 47.6 + 130 * phi, 120 + 0 * phi])
        dt = dt + 3 * bed_jit + 3 * tex
        f = gradational(rng, (dt - left) / (right - left))
        skip = _bed_spikes(rng, n, rng.uniform(0.0, 1.5), (0.25, 1.0))   # cycle skips
        f = f + np.sign(rng.standard_normal()) * rng.uniform(0.1, 0.25) * (skip > 0.5)
    else:  # pragma: no cover - FAMILIES is closed
        raise ValueError(name)
    f = _smooth(np.asarray(f, dtype=np.float64), res_sigma)
    if not wrap:
        # the engineer set the scale so the curve stays on the track: rescale if it would not
        lo, hi = np.nanpercentile(f, [1, 99])
        if lo < 0.03 or hi > 0.97:
            a, b = rng.uniform(0.03, 0.25), rng.uniform(0.75, 0.97)
            f = a + (f - lo) * (b - a) / max(hi - lo, 1e-6)
    # tool noise: fine (row-to-row wiggles), spiky (heavy-tailed, ~1 ft) and correlated
    fine = rng.uniform(0.1, 0.5)
    spiky = rng.laplace(0.0, 1.0, n)
    spiky = _smooth(spiky, rng.uniform(0.25, 1.0)) * rng.uniform(0.3, 1.0)
    f = f + amp * (fine * _noise(rng, n, 0.0) + 0.8 * _noise(rng, n, 1.5) + spiky)
    if wrap:
        f = np.clip(f, -0.95, 1.95)
    else:
        f = np.clip(f, 0.004, 0.996)
    return f
