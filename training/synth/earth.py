"""Layered-earth model: blocky beds, transitions and tool noise per curve family.

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
    ``bed``: int [N] bed index.
    """

    depth_ft: np.ndarray
    lith: np.ndarray
    phi: np.ndarray
    hc: np.ndarray
    ramp: np.ndarray
    bed: np.ndarray


def sample_beds(rng: np.random.Generator, top_ft: float, bottom_ft: float) -> Beds:
    """Blocky bed sequence between ``top_ft`` and ``bottom_ft`` (with margins)."""
    top, bottom = top_ft - 20.0, bottom_ft + 20.0
    n = int(np.ceil((bottom - top) / MODEL_STEP_FT)) + 1
    depth = top + MODEL_STEP_FT * np.arange(n)
    median = rng.uniform(3.0, 15.0)
    nb_guess = int((bottom - top) / (median * 0.5)) + 8
    thick = np.maximum(0.75, median * rng.lognormal(0.0, 0.8, nb_guess))
    edges = top + np.concatenate([[0.0], np.cumsum(thick)])
    while edges[-1] < bottom:  # rare: extend
        edges = np.append(edges, edges[-1] + median)
    nbeds = len(edges) - 1
    lith_b = rng.choice(len(LITHOLOGIES), size=nbeds, p=_LITH_P)
    phi_b = np.where(lith_b == 1, rng.uniform(0.08, 0.32, nbeds),
                     np.where(lith_b == 2, rng.uniform(0.0, 0.15, nbeds), rng.uniform(0.2, 0.4, nbeds)))
    hc_b = ((lith_b == 1) & (rng.random(nbeds) < 0.3)).astype(np.float64)
    grad_b = rng.random(nbeds) < 0.3  # gradational (fining/coarsening) beds
    bed = np.searchsorted(edges, depth, side="right") - 1
    bed = np.clip(bed, 0, nbeds - 1)
    pos = (depth - edges[bed]) / np.maximum(edges[bed + 1] - edges[bed], 1e-6) - 0.5
    ramp = np.where(grad_b[bed], pos * rng.choice([-1.0, 1.0]), 0.0)
    return Beds(depth, lith_b[bed], phi_b[bed], hc_b[bed], ramp, bed)


def _smooth(x: np.ndarray, sigma_ft: float) -> np.ndarray:
    s = sigma_ft / MODEL_STEP_FT
    if s < 0.3:
        return x
    r = int(3 * s) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    xp = np.pad(x, r, mode="edge")
    return np.convolve(xp, k, mode="valid")


def _noise(rng: np.random.Generator, n: int, corr_samples: float) -> np.ndarray:
    """Unit-variance correlated noise of length n."""
    w = rng.standard_normal(n)
    if corr_samples > 0.5:
        w = _smooth(w, corr_samples * MODEL_STEP_FT)
        w /= max(w.std(), 1e-6)
    return w


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
    """
    n = len(beds.depth_ft)
    lith, phi, hc = beds.lith, beds.phi, beds.hc
    is_sh, is_sd, is_lm, is_co = (lith == 0), (lith == 1), (lith == 2), (lith == 3)
    bed_jit = rng.standard_normal(int(beds.bed.max()) + 1)[beds.bed]
    name = fam.name
    # base position across the track (0..1 fraction of the chosen scale)
    if name == "GR":
        f = np.select([is_sh, is_sd, is_lm, is_co], [0.62, 0.22, 0.14, 0.1]) + 0.07 * bed_jit
        f += 0.25 * beds.ramp * is_sd
        if wrap:
            hot = (rng.random(int(beds.bed.max()) + 1) < 0.12)[beds.bed] & is_sh
            f = f + hot * rng.uniform(0.5, 0.9)
    elif name == "SP":
        base = rng.uniform(0.65, 0.85)
        f = base - is_sd * (0.15 + 2.0 * phi) - is_lm * 0.08 + 0.02 * bed_jit
        f += np.linspace(0, rng.uniform(-0.1, 0.1), n)
    elif name == "CALI":
        bit = rng.uniform(0.15, 0.3)
        f = bit + is_sh * np.clip(rng.uniform(0, 0.15) + 0.05 * bed_jit, 0, None) - is_sd * 0.02
        f += is_co * 0.2
    elif name in ("RES", "RESLIN"):
        # Archie-ish resistivity in ohm.m, converted below
        rw = rng.uniform(0.03, 0.15)
        sw = np.where(hc > 0, rng.uniform(0.15, 0.4), 1.0)
        rt_sd = rw / np.maximum(phi, 0.03) ** 2 / sw ** 2
        rt = np.select([is_sh, is_sd, is_lm, is_co],
                       [rng.uniform(1.0, 6.0) * np.ones(n), rt_sd, 100.0 + 800.0 * (0.15 - phi) / 0.15,
                        300.0 * np.ones(n)])
        rt = rt * np.exp(0.25 * bed_jit)
        lo, hi = (min(left, right), max(left, right))
        if scale == "log":
            f = (np.log10(rt) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
        else:
            f = (rt - lo) / (hi - lo) * rng.uniform(0.5, 1.5)
    elif name == "RHOB":
        rho = np.select([is_sh, is_sd, is_lm, is_co],
                        [2.45 + 0 * phi, 2.65 - 1.65 * phi, 2.71 - 1.71 * phi, 1.4 + 0 * phi])
        rho = rho - hc * 0.08 + 0.03 * bed_jit
        f = (rho - left) / (right - left)
    elif name == "NPHI":
        nphi = np.select([is_sh, is_sd, is_lm, is_co], [0.38 + 0 * phi, phi - hc * 0.08, phi, 0.5 + 0 * phi])
        nphi = nphi + 0.02 * bed_jit
        f = (nphi - left) / (right - left)
    elif name == "DT":
        dt = np.select([is_sh, is_sd, is_lm, is_co],
                       [105 + 0 * phi, 55.5 + 130 * phi, 47.6 + 130 * phi, 120 + 0 * phi])
        dt = dt + 4 * bed_jit
        f = (dt - left) / (right - left)
    else:  # pragma: no cover - FAMILIES is closed
        raise ValueError(name)
    f = _smooth(np.asarray(f, dtype=np.float64), fam.resolution_ft * rng.uniform(0.6, 1.4))
    if not wrap:
        # the engineer set the scale so the curve stays on the track: rescale if it would not
        lo, hi = np.nanpercentile(f, [1, 99])
        if lo < 0.03 or hi > 0.97:
            a, b = rng.uniform(0.03, 0.25), rng.uniform(0.75, 0.97)
            f = a + (f - lo) * (b - a) / max(hi - lo, 1e-6)
    # tool noise: fine (row-to-row wiggles), spiky (heavy-tailed, ~1 ft) and correlated
    amp = fam.noise * rng.uniform(0.3, 1.3) * wiggle
    fine = rng.uniform(0.1, 0.5)
    spiky = rng.laplace(0.0, 1.0, n)
    spiky = _smooth(spiky, rng.uniform(0.25, 1.0)) * rng.uniform(0.5, 1.5)
    f = f + amp * (fine * _noise(rng, n, 0.0) + 0.8 * _noise(rng, n, 1.5) + spiky)
    if wrap:
        f = np.clip(f, -0.95, 1.95)
    else:
        f = np.clip(f, 0.004, 0.996)
    return f
