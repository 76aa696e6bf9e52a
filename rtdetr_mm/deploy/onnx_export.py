"""Export an :class:`End2EndDetector` to ONNX, with errors that say why.

The graph's interface (what ``tools/deploy/onnx_infer.py`` and any robot
code relies on):

* inputs ``images`` (N, 3, H, W) RGB 0..255 (uint8 or float32) and
  ``orig_sizes`` (N, 2) int64 (height, width) of the original images;
* outputs ``labels`` (N, K) int64, ``boxes`` (N, K, 4) float32 xyxy in
  original-image pixels, ``scores`` (N, K) float32, sorted by score.
"""
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .end2end import End2EndDetector

INPUT_NAMES = ('images', 'orig_sizes')
OUTPUT_NAMES = ('labels', 'boxes', 'scores')
INPUT_DTYPES = {'uint8': torch.uint8, 'float32': torch.float32}


class OnnxExportError(RuntimeError):
    """The model does not export; the message names the op and module."""


def check_input_shape(shape: Sequence[int], size_divisor: int = 32) -> None:
    """Refuse input sizes the detector would pad (its boxes assume none)."""
    if len(shape) != 2 or any(
            int(s) <= 0 or int(s) % size_divisor for s in shape):
        raise ValueError(f'--shape must be two positive multiples of '
                         f'{size_divisor} (height width), got {list(shape)}')


class _OpLocator(TorchDispatchMode):
    """Record the module that runs each aten op (first occurrence)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.stack: List[str] = []
        self.first_caller = {}
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(
                module.register_forward_pre_hook(
                    lambda *_, name=name: self.stack.append(name)))
            self.handles.append(
                module.register_forward_hook(lambda *_: self._leave()))

    def _leave(self) -> None:
        self.stack.pop()  # returns None: the module's output is kept

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        op = func._schema.name.split('::')[-1]
        if self.stack:
            self.first_caller.setdefault(op, self.stack[-1])
        return func(*args, **(kwargs or {}))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def locate_op(model: nn.Module, inputs: Tuple, op: str) -> Optional[str]:
    """Name of the first module whose forward runs aten op ``op``
    (``grid_sampler`` also finds ``grid_sampler_2d``); None if none does."""
    locator = _OpLocator(model)
    try:
        with torch.no_grad(), locator:
            model(*inputs)
    finally:
        locator.remove()
    for name, module_name in locator.first_caller.items():
        if name == op or name.startswith(op + '_'):
            return module_name or type(model).__name__
    return None


def _explain(error: Exception, model: nn.Module, inputs: Tuple,
             opset: int) -> str:
    """An export error as: which op, in which module, what opset to try."""
    text = str(error)
    op = re.search(r"operator '?(?:aten::)?([A-Za-z_0-9]+)'?", text)
    if op is None:
        return f'export at opset {opset} failed: {text}'
    op = op.group(1)
    where = locate_op(model, inputs, op)
    added = re.search(r'added in (?:opset )?version (\d+)', text)
    hint = (f'try --opset {added.group(1)} or later' if added else
            f'no opset up to {opset} has it: replace the op in that module '
            'or try a newer --opset')
    return (f"the op aten::{op}{f' in {where}' if where else ''} does not "
            f'export to ONNX at opset {opset}: {hint}')


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """The tracer warns for every shape read as a Python number; the export
    is at a fixed H x W, so those are expected and not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=UserWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        yield


def export_onnx(detector: nn.Module,
                out_file,
                shape: Sequence[int],
                batch: int = 1,
                dynamic_batch: bool = False,
                opset: int = 17,
                input_dtype: str = 'uint8') -> Path:
    """Write ``detector`` (eval mode) as an end-to-end ONNX graph.

    Args:
        detector: an :class:`RTDETR` (switch it to deploy form first).
        out_file: the ``.onnx`` path to write.
        shape: input (height, width), multiples of 32.
        batch: the fixed batch size (ignored with ``dynamic_batch``).
        dynamic_batch: make the batch dimension of every input and output
            dynamic (the graph is traced at batch 2, so a batch size baked
            in anywhere fails the batch 1 and 3 checks).
        opset: ONNX opset; 16+ for GridSample, 17 for LayerNormalization.
        input_dtype: ``'uint8'`` or ``'float32'`` for ``images``.

    Returns:
        Path: the written file.
    """
    check_input_shape(shape)
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f'input_dtype must be one of {sorted(INPUT_DTYPES)},'
                         f' got {input_dtype!r}')
    wrapper = End2EndDetector(detector).eval()
    n = 2 if dynamic_batch else batch
    height, width = (int(s) for s in shape)
    images = torch.randint(
        0, 256, (n, 3, height, width),
        dtype=torch.uint8).to(INPUT_DTYPES[input_dtype])
    orig_sizes = torch.tensor([[height, width]] * n, dtype=torch.int64)
    inputs = (images, orig_sizes)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {
            name: {
                0: 'batch'
            }
            for name in INPUT_NAMES + OUTPUT_NAMES
        }
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), _quiet_tracing():
            torch.onnx.export(
                wrapper,
                inputs,
                str(out_file),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True)
    except Exception as error:  # the exporter raises many types
        raise OnnxExportError(_explain(error, wrapper, inputs,
                                       opset)) from error
    return out_file


def write_metadata(onnx_file, metadata: dict) -> None:
    """Store ``metadata`` (str -> str) in the file's ``metadata_props``,
    which ONNX Runtime returns as ``get_modelmeta().custom_metadata_map``."""
    import onnx
    model = onnx.load(str(onnx_file))
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(onnx_file))
