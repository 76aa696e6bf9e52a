"""Deployment: deploy-form switching, ONNX export and its parity check."""
from .end2end import End2EndDetector
from .loading import load_config, load_detector, set_deploy
from .onnx_check import OnnxMismatchError, check_onnx
from .onnx_export import (INPUT_NAMES, OUTPUT_NAMES, OnnxExportError,
                          export_onnx)

__all__ = [
    'End2EndDetector', 'load_config', 'load_detector', 'set_deploy',
    'OnnxMismatchError', 'check_onnx', 'INPUT_NAMES', 'OUTPUT_NAMES',
    'OnnxExportError', 'export_onnx'
]
