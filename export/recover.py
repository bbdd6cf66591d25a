"""A trainable checkpoint back from an exported model (the inverse of export).

Export folds each BatchNorm into the convolution before it and, for the int8 variant,
stores the weights as int8 with per-channel scales. Training runs leave their
checkpoints in ``runs/``, which does not travel with the repository; the shipped ONNX
file does. :func:`recover_checkpoint` rebuilds the network named in the model's
metadata (``logdigit.model``), puts the dequantized folded weights into its
convolutions, and re-inflates each BatchNorm so that the network computes the folded
function both in eval mode and (up to batch statistics) in train mode:

    conv y = W x;  BN(y) = gamma (y - mu) / sqrt(var + eps) + beta
    with mu, var = the mean and variance of y per channel over rendered tiles,
    gamma = sqrt(var + eps), beta = mu + b   (b: the folded bias)

so ``BN(W x) = W x + b`` exactly with the running statistics, and with a batch's own
statistics as long as they are near the running ones. Fine-tuning from the result
(``logdigit-train finetune init=ckpt.pt 'init_parts=[encoder,decoder,head]'``)
continues the shipped model instead of starting again.

    logdigit-train recover logdigit/models/logdigit_default.onnx -o runs/shipped.pt

The recovered network is the int8 model's weights in float32 (activations are no
longer quantized), so it scores within the int8 rounding of the shipped model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

from logdigit import constants as C


def _dequantize(node, inits: dict[str, np.ndarray]) -> np.ndarray:
    """Value of a DequantizeLinear node whose inputs are initializers: float64."""
    q = inits[node.input[0]].astype(np.float64)
    scale = inits[node.input[1]].astype(np.float64)
    zp = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros(1)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:   # per channel along ``axis``
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q - zp) * scale


def _tensor(name: str, inits: dict[str, np.ndarray], producers: dict) -> np.ndarray:
    """An initializer, or a DequantizeLinear of initializers, as float64."""
    if name in inits:
        return inits[name].astype(np.float64)
    node = producers.get(name)
    if node is None or node.op_type != "DequantizeLinear":
        raise ValueError(f"conv input {name!r} is neither a weight nor a dequantized weight")
    return _dequantize(node, inits)


def _module_name(node_name: str) -> str:
    """'/encoder/stages.0/stages.0.0/stages.0.0.0/stages.0.0.0.0/Conv' -> 'encoder.stages.0.0.0.0'."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2 or not parts[-1].startswith("Conv"):
        raise ValueError(f"conv node {node_name!r} does not name its module (exporter?)")
    return parts[0] + ("." + parts[-2] if len(parts) > 2 else "")


def folded_convs(onnx_path: str | os.PathLike) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], dict]:
    """({module name: (weight [O, I, k, k], bias [O] or None)}, metadata) of an exported model."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        w = _tensor(n.input[1], inits, producers)
        b = _tensor(n.input[2], inits, producers) if len(n.input) > 2 and n.input[2] else None
        out[_module_name(n.name)] = (w, b)
    meta = {p.key: p.value for p in m.metadata_props}
    return out, meta


def calibration_tiles(count: int = 48, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Rendered training-like tiles (:func:`export.samples.labelled_tiles`): float32
    [1, 1, size, size], pixel / 255."""
    from .samples import labelled_tiles

    return [(img.astype(np.float32) / 255.0)[None, None]
            for img, _ in labelled_tiles(count, size, seed=seed)]


def recover_checkpoint(onnx_path: str | os.PathLike, out: str | os.PathLike,
                       tiles: list[np.ndarray] | None = None,
                       log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Write a finetune checkpoint rebuilt from an exported logdigit model.

    Parameters
    ----------
    onnx_path : path
        A model written by ``logdigit-train export`` (fp32 or int8), with its
        ``logdigit.model`` metadata (network name and arguments).
    out : path
        The checkpoint (:func:`training.checkpoint.save_checkpoint`).
    tiles : list of float32 [1, 1, H, W] or None
        Inputs (pixel / 255) the BatchNorm statistics are measured on (default:
        :func:`calibration_tiles`).

    Returns
    -------
    dict
        ``{"convs": n, "agreement": share of tile pixels whose argmax matches the
        ONNX model, "max_abs_diff": largest logit difference}``.

    Raises
    ------
    ValueError
        when the file has no ``logdigit.model`` metadata or its convolutions do not
        match the network it names.
    """
    import onnxruntime as ort
    import torch

    from training.checkpoint import save_checkpoint
    from training.models import build_model

    convs, meta = folded_convs(onnx_path)
    if "logdigit.model" not in meta:
        raise ValueError(f"{onnx_path}: no logdigit.model metadata: not a logdigit export")
    spec = json.loads(meta["logdigit.model"])
    model = build_model(spec["name"], **spec.get("args", {}))
    mods = dict(model.named_modules())
    bn_of: dict[str, torch.nn.BatchNorm2d] = {}
    for name, mod in mods.items():   # conv -> the BatchNorm right after it in its Sequential
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod.named_children())
            for (a, ca), (_, cb) in zip(kids, kids[1:]):
                if isinstance(ca, torch.nn.Conv2d) and isinstance(cb, torch.nn.BatchNorm2d):
                    bn_of[f"{name}.{a}" if name else a] = cb
    torch_convs = {n for n, mod in mods.items() if isinstance(mod, torch.nn.Conv2d)}
    if set(convs) != torch_convs:
        raise ValueError(f"{onnx_path}: its convolutions {sorted(set(convs) ^ torch_convs)[:4]} "
                         f"do not match network {spec['name']} {spec.get('args')}")
    with torch.no_grad():
        for name, (w, b) in convs.items():
            conv = mods[name]
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(f"{onnx_path}: {name} weight {w.shape} != network "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w).float())
            bias = torch.zeros(w.shape[0]) if b is None else torch.from_numpy(b).float()
            if name in bn_of:   # pass-through first: BN(y) = y + b
                bn = bn_of[name]
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif conv.bias is not None:
                conv.bias.copy_(bias)
    model.eval()
    tiles = tiles if tiles is not None else calibration_tiles()
    sums = {n: [0.0, 0.0, 0] for n in bn_of}   # per conv: sum y, sum y^2, count (per channel)

    def hook(name):
        def f(_mod, _inp, y):
            s = sums[name]
            yd = y.detach().double()
            s[0] = s[0] + yd.sum((0, 2, 3))
            s[1] = s[1] + (yd * yd).sum((0, 2, 3))
            s[2] += yd.shape[0] * yd.shape[2] * yd.shape[3]
        return f

    hooks = [mods[n].register_forward_hook(hook(n)) for n in bn_of]
    with torch.no_grad():
        for t in tiles:
            model(torch.from_numpy(t))
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for name, bn in bn_of.items():
            s0, s1, k = sums[name]
            mu = s0 / k
            var = torch.clamp(s1 / k - mu * mu, min=0.0)
            b = bn.bias.detach().double().clone()
            bn.running_mean.copy_(mu.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.copy_((mu + b).float())
    # how close the rebuilt network is to the file
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    agree = total = 0
    max_diff = 0.0
    with torch.no_grad():
        for t in tiles[:8]:
            ref = sess.run(None, {C.ONNX_INPUT_NAME: t})[0]
            got = model(torch.from_numpy(t)).numpy()
            agree += int((ref.argmax(1) == got.argmax(1)).sum())
            total += ref.shape[0] * ref.shape[2] * ref.shape[3]
            max_diff = max(max_diff, float(np.abs(ref - got).max()))
    report = {"convs": len(convs), "agreement": agree / max(1, total),
              "max_abs_diff": max_diff, "source": str(onnx_path)}
    log(f"recovered {len(convs)} convolutions of {spec['name']}; argmax agreement with the "
        f"file {100 * report['agreement']:.3f} %, max |logit diff| {max_diff:.3g}")
    metrics = json.loads(meta.get(C.META_METRICS, "{}") or "{}")
    save_checkpoint(out, kind="finetune", model_name=spec["name"],
                    model_args=spec.get("args", {}), state_dict=model.state_dict(),
                    config={"recovered_from": str(Path(onnx_path).name)},
                    config_sha256=json.loads(meta.get(C.META_CONFIG_SHA, '""') or '""'),
                    step=int(spec.get("step") or 0), epoch=int(spec.get("epoch") or 0),
                    metrics={**metrics, "recovered": report})
    return report



@click.command("recover")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint (.pt) to write.")
@click.option("--tiles", default=48, show_default=True, type=click.IntRange(min=1),
              help="Rendered tiles the BatchNorm statistics are measured on.")
@click.option("--seed", default=0, show_default=True, help="Renderer seed of those tiles.")
@click.option("-q", "--quiet", is_flag=True)
def cli(model, output, tiles, seed, quiet):
    """A finetune checkpoint rebuilt from an exported MODEL (.onnx, fp32 or int8), to
    continue training the shipped model."""
    from logdigit.errors import LogdigitError

    try:
        rep = recover_checkpoint(model, output, calibration_tiles(tiles, seed=seed),
                                 log=(lambda s: None) if quiet else
                                 (lambda s: click.echo(s, err=True)))
    except (ValueError, LogdigitError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps({"output": output, **rep}))
