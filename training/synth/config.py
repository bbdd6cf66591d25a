"""Renderer configuration: every random range the page sampler draws from.

All fields have defaults; layer YAML / ``key=value`` overrides on top with
:func:`training.config.resolve`. Ranges are ``(low, high)`` inclusive; ``*_prob``
fields are probabilities per page (or per curve where said).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RenderConfig:
    """Random ranges of the synthetic log page renderer (pixels unless stated)."""

    # -- page geometry -------------------------------------------------------
    height: tuple[int, int] = (3000, 9000)        #: page height (px, whole scan)
    width: tuple[int, int] = (900, 2400)          #: page width (px)
    px_per_ft: tuple[float, float] = (2.0, 16.0)  #: vertical resolution, log-uniform
    metric_prob: float = 0.25                     #: depth in metres (labels every 10/20 m)
    header_prob: float = 0.85                     #: a text header block above the log
    header_rows: tuple[int, int] = (150, 700)     #: header block height when present
    footer_prob: float = 0.3                      #: the scale band repeated below the log
    stretch_max: float = 0.015                    #: |vertical scan stretch| (fraction)
    # -- tracks and grids ----------------------------------------------------
    n_tracks: tuple[int, int] = (1, 4)
    min_track_px: int = 220                       #: narrowest track (px)
    log_track_prob: float = 0.35                  #: a track gets a logarithmic grid
    decades: tuple[int, int] = (2, 4)             #: log grid decades
    minor_vgrid_prob: float = 0.35                #: linear grid gets finer minor lines
    dashed_grid_prob: float = 0.2                 #: minor grid lines printed dashed / dotted
    depth_rotated_prob: float = 0.3               #: depth numbers rotated 90 degrees
    depth_between_prob: float = 0.6               #: depth track between tracks 1 and 2
    # -- curves --------------------------------------------------------------
    curves_per_track: tuple[int, int] = (1, 4)
    style_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  #: CURVE_STYLES order
    line_width: tuple[int, int] = (1, 4)          #: curve pen width (px), skewed to thin
    wrap_prob: float = 0.35                       #: per wrap-able curve: printed with backups
    dropout_prob: float = 0.3                     #: per curve: has unrecorded stretches
    partial_prob: float = 0.15                    #: per curve: starts late / stops early
    analogue_prob: float = 0.5                    #: wiggly analogue recording (else smooth digital print)
    #: per curve: held still for stretches (a stuck tool or pen, a constant reading, an
    #: early digital plotter's stair steps), so the network learns that a long straight
    #: vertical line off the grid can be curve. 0 by default: the seeded bench pages of
    #: earlier sessions stay the same; training configs turn it on.
    hold_prob: float = 0.0
    hold_stair_share: float = 0.5                 #: of held curves: stair steps over the whole curve
    hold_ft: tuple[float, float] = (8.0, 80.0)    #: length of a flat stretch (ft)
    stair_ft: tuple[float, float] = (1.0, 6.0)    #: length of one stair step (ft)
    shading_prob: float = 0.25                    #: fill between a curve and a track edge (x2 on colour prints)
    shading_level: tuple[float, float] = (0.12, 0.35)  #: share of the fill inked (screen dot density)
    hatch_prob: float = 0.2                       #: hatched boxes (perforations, cores) in a track
    leader_prob: float = 0.35                     #: curve names with arrows pointing at the curve
    label_every_px: tuple[int, int] = (1200, 3000)  #: curve name labels repeated in tracks
    # -- print / scan --------------------------------------------------------
    colour_prob: float = 0.15                     #: colour print (RGB image, coloured curves)
    same_style_colour_prob: float = 0.0           #: colour print: 2 curves of a track share a style
    binarize_prob: float = 0.45                   #: 1-bit (CCITT G4 archive) look
    degrade_prob: float = 0.92                    #: apply scan degradation at all
    skew_prob: float = 0.5
    skew_max_deg: float = 1.0
    blur_sigma: tuple[float, float] = (0.0, 1.1)
    noise_sigma: tuple[float, float] = (0.0, 14.0)
    speckle_prob: float = 0.6
    jpeg_prob: float = 0.25
    jpeg_quality: tuple[int, int] = (30, 85)
    fade_prob: float = 0.5                        #: faded / broken lines
    grid_drop_prob: float = 0.15                  #: faint grid lost in patches
    band_prob: float = 0.25                       #: dark page-join bands
    edge_prob: float = 0.12                       #: dark page-edge bar down one side
    stain_prob: float = 0.25
    fold_prob: float = 0.2
    streak_prob: float = 0.15                     #: thin scanner streaks down the page
    bleed_prob: float = 0.2                       #: bleed-through from the reverse side
    handwriting_prob: float = 0.35                #: handwritten picks and notes
    stamp_prob: float = 0.2
    # -- training tiles ------------------------------------------------------
    body_tile_prob: float = 0.85                  #: tile lies in the log body (tracks)
