"""Helpers shared by the test files."""
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'


class TouchFile:
    """Unpickling this creates ``path`` (what an attacker's payload does)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


def write_malicious_checkpoint(path, marker):
    """A real-looking checkpoint that creates ``marker`` when unpickled."""
    torch.save(
        dict(
            state_dict=dict(weight=torch.zeros(2)),
            meta=dict(payload=TouchFile(marker))), path)
    return path
