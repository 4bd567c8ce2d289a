# Copyright (c) mmtfclip contributors. All rights reserved.
"""Helpers shared by the tracklet transforms."""
import numpy as np


def frames_as_array(results: dict, who: str) -> np.ndarray:
    """``results['imgs']`` as one uint8 array ``[N, H, W, C]``.

    Args:
        results (dict): Holds ``imgs``, an array or a list of frames.
        who (str): The calling transform, for the error message.

    Returns:
        np.ndarray: The frames (also stored back into ``results``).
    """
    imgs = results['imgs']
    if isinstance(imgs, np.ndarray):
        return imgs
    shapes = {f.shape for f in imgs}
    if len(shapes) != 1:
        raise ValueError(
            f'{who}: the frames of tracklet {results.get("tracklet_id")} '
            f'differ in size {sorted(shapes)}; put TrackletResize first.')
    imgs = np.stack(imgs)
    results['imgs'] = imgs
    return imgs
