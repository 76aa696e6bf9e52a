"""tools/analysis_tools/browse_augmentation.py on the toy DEIM stages."""
import cv2

from ..datasets.test_deim_augmentation import (small_toy_data,
                                               write_toy_deim_config)
from .conftest import load_tool


def test_writes_each_epochs_batch_named_by_stage(tmp_path):
    browse = load_tool('analysis_tools/browse_augmentation.py')
    config = write_toy_deim_config(tmp_path / 'deim_toy.py')
    data_root = small_toy_data(tmp_path / 'toy_shapes')
    written = browse.main([
        str(config), '--epochs', '9', '0', '3', '--num', '2', '--grid',
        '--output-dir',
        str(tmp_path / 'out'), '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={data_root}'
    ])
    names = [p.name for p in written]
    assert names == [
        'epoch000_stage1_00.png', 'epoch000_stage1_01.png',
        'epoch000_stage1_grid.jpg', 'epoch003_stage2_00.png',
        'epoch003_stage2_01.png', 'epoch003_stage2_grid.jpg',
        'epoch009_stage4_00.png', 'epoch009_stage4_01.png',
        'epoch009_stage4_grid.jpg'
    ]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == names
    first = cv2.imread(str(tmp_path / 'out' / names[0]))
    assert first.shape == (192, 192, 3)  # stage 1 before any resize draw
    assert cv2.imread(str(written[-1])).shape == (192, 384, 3)
    # the ground truth is drawn: box outlines in the ToyShapes palette (BGR)
    palette = [(60, 20, 220), (255, 130, 0), (30, 170, 0), (30, 170, 250),
               (200, 30, 160)]
    outline = sum(int((first == colour).all(-1).sum()) for colour in palette)
    assert outline >= 40
