"""Turn a trained RT-DETR checkpoint into its inference (deploy) form.

    python tools/deploy/deploy_rtdetr.py CONFIG CHECKPOINT [--out-dir DIR] \
        [--size 640] [--rtol 1e-4] [--device cpu]

Works for any backbone: loads CHECKPOINT into the model of CONFIG, calls the
detector's ``switch_to_deploy()`` (RIFormer's norm + affine folding, the
neck's RepVGG fusion, any other backbone's re-parameterisation), checks on a
random image that the raw head outputs are unchanged (each output's largest
difference <= ``--rtol`` times its largest magnitude: float32 rounding of
the folding grows with the values, which trained weights make large), and
writes into ``--out-dir``:

* ``<checkpoint>_deploy.pth``: the switched weights (``state_dict`` + the
  source ``meta``);
* ``<config>_deploy.py``: CONFIG with ``deploy=True`` on every model part
  whose class takes it (so the fused layers are built directly), no
  pretrained backbone download and ``load_from`` set to the new checkpoint.

Before writing, the deploy model is rebuilt from that config, the new
checkpoint is loaded strictly and its outputs are compared again, so the pair
works with ``python tools/test.py <config>_deploy.py <checkpoint>_deploy.pth``.
"""
import argparse
import copy
import os.path as osp
from pathlib import Path
from typing import List

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.runner import load_checkpoint

import rtdetr_mm  # noqa: F401  (registers the modules)
from rtdetr_mm.deploy import load_config, set_deploy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='switch_to_deploy() a trained RT-DETR, check, save')
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument(
        '--out-dir', help='where to write (default: beside CHECKPOINT)')
    parser.add_argument(
        '--size', type=int, default=640, help='square size of the check image')
    parser.add_argument(
        '--rtol',
        type=float,
        default=1e-4,
        help='largest allowed output difference, relative to the largest '
        'magnitude of that output')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def check_inputs(size: int, device: str):
    """A fixed random image in [0, 1] (RT-DETR's input range) + its meta."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(1, 3, size, size, generator=generator).to(device)
    meta = dict(
        img_shape=(size, size),
        ori_shape=(size, size),
        pad_shape=(size, size),
        batch_input_shape=(size, size),
        scale_factor=(1.0, 1.0))
    return inputs, [DetDataSample(metainfo=meta)]


@torch.no_grad()
def raw_outputs(model, inputs, samples) -> List[torch.Tensor]:
    """Every tensor the head returns (``mode='tensor'``), flattened."""
    flat = []

    def collect(obj):
        if isinstance(obj, torch.Tensor):
            flat.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                collect(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                collect(item)

    collect(model(inputs, copy.deepcopy(samples), mode='tensor'))
    return flat


def max_difference(a: List[torch.Tensor], b: List[torch.Tensor]) -> float:
    """Largest ``max|x - y| / max|x|`` over the outputs ``x`` of ``a``."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise RuntimeError('the deploy model returns differently shaped '
                           'outputs')
    return max(((x - y).abs().max() / x.abs().max().clamp(min=1e-12)).item()
               for x, y in zip(a, b))


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    # The trained checkpoint holds every weight: no pretrained download.
    cfg.model.backbone.pop('init_cfg', None)

    model = MODELS.build(copy.deepcopy(cfg.model)).to(args.device)
    checkpoint = load_checkpoint(
        model, args.checkpoint, map_location='cpu', strict=True)
    model.eval()
    params_before = sum(p.numel() for p in model.parameters()) / 1e6
    inputs, samples = check_inputs(args.size, args.device)
    before = raw_outputs(model, inputs, samples)
    model.switch_to_deploy()
    after = raw_outputs(model, inputs, samples)
    switch_diff = max_difference(before, after)
    if switch_diff > args.rtol:
        raise RuntimeError(
            f'switch_to_deploy() changed the outputs by '
            f'{switch_diff:.3g} (relative) > --rtol {args.rtol}')

    out_dir = Path(args.out_dir or osp.dirname(osp.abspath(args.checkpoint)))
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / f'{Path(args.checkpoint).stem}_deploy.pth'
    cfg_path = out_dir / f'{Path(args.config).stem}_deploy.py'
    changed = set_deploy(cfg.model)
    cfg.load_from = str(ckpt_path)
    meta = dict(
        checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {})
    meta.update(deploy=True, deploy_source=str(args.checkpoint))
    torch.save(dict(meta=meta, state_dict=model.state_dict()), ckpt_path)

    # The pair must rebuild: fused layers built directly, strict loading.
    rebuilt = MODELS.build(copy.deepcopy(cfg.model)).to(args.device)
    load_checkpoint(rebuilt, str(ckpt_path), map_location='cpu', strict=True)
    rebuilt_diff = max_difference(before,
                                  raw_outputs(rebuilt.eval(), inputs, samples))
    if rebuilt_diff > args.rtol:
        raise RuntimeError(
            f'the model rebuilt from the deploy config differs '
            f'by {rebuilt_diff:.3g} (relative) > --rtol {args.rtol}')
    cfg.dump(str(cfg_path))

    params_after = sum(p.numel() for p in rebuilt.parameters()) / 1e6
    print(f'deploy=True set on: {", ".join(changed) or "nothing"}')
    print(f'parameters: {params_before:.3f} M -> {params_after:.3f} M')
    print(f'max relative output difference: switch {switch_diff:.2e}, '
          f'rebuilt from config {rebuilt_diff:.2e} (--rtol {args.rtol})')
    print(f'saved {ckpt_path}\nsaved {cfg_path}')
    print(f'evaluate with: python tools/test.py {cfg_path} {ckpt_path}')
    return ckpt_path, cfg_path


if __name__ == '__main__':
    main()
