# Copyright (c) mmtfclip contributors. All rights reserved.
"""The smallest end-to-end setting of the demo, shared by the tests that
run the tools in a subprocess."""
import subprocess
import sys
from typing import Sequence

from mmtfclip.utils.synthetic import make_synthetic_mars

# configs/tfclip_demo.py sized for write_tiny_synthetic_mars's data.
TINY_DEMO_OPTIONS = ['model.head.num_classes=8', 'model.backbone.num_cams=2']


def write_tiny_synthetic_mars(root: str, tracklets_per_id: int = 1) -> str:
    """A MARS-layout synthetic set small enough to train on in seconds.

    8 training and 4 test identities seen by 2 cameras, 4-6 frames of
    64 x 32 per tracklet (see :func:`make_synthetic_mars`).

    Args:
        root (str): Folder to write.
        tracklets_per_id (int): Tracklets per identity and camera; 2 gives
            each training identity the 4 tracklets of a P x K group.
            Defaults to 1.

    Returns:
        str: ``root``.
    """
    make_synthetic_mars(
        root,
        num_ids=12,
        num_test_ids=4,
        num_cams=2,
        tracklets_per_id=tracklets_per_id,
        min_frames=4,
        max_frames=6,
        img_size=(64, 32))
    return root


def run_python(args: Sequence[str],
               cwd: str,
               expect_success: bool = True,
               timeout: float = 300) -> str:
    """Run a Python script of the project with this interpreter.

    Args:
        args (Sequence[str]): The script and its arguments.
        cwd (str): Working directory.
        expect_success (bool): Assert a zero (True) or a non-zero (False)
            exit status; the assertion shows the end of the output.
            Defaults to True.
        timeout (float): Seconds. Defaults to 300.

    Returns:
        str: stdout followed by stderr.
    """
    out = subprocess.run([sys.executable, *args],
                         capture_output=True,
                         text=True,
                         timeout=timeout,
                         cwd=cwd)
    output = out.stdout + out.stderr
    assert (out.returncode == 0) == expect_success, (
        f'exit status {out.returncode}:\n' + output[-6000:])
    return output
