# Copyright (c) mmtfclip contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class ConfigCheckHook(Hook):
    """Check that the model fits the data before any work is done.

    Runs first among the ``before_train`` hooks (before the CLIP-Memory is
    built) and raises one error naming each config key that does not fit:
    ``model.head.num_classes`` against the training identities, and
    ``model.backbone.num_cams`` against the cameras of the data. Before
    the first validation and before testing, the cameras of the evaluated
    sets are checked against ``model.backbone.num_cams`` as well, so that
    ``tools/test.py`` on a set with more cameras than the model stops here
    with the key's name instead of deep inside the camera embedding.
    """

    priority = 'HIGHEST'

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        meta = dataset.metainfo
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        problems = []
        head = getattr(model, 'head', None)
        num_pids = meta.get('num_pids')
        if head is not None and num_pids is not None and getattr(
                head, 'num_classes', num_pids) != num_pids:
            problems.append(
                f'model.head.num_classes = {head.num_classes} but the '
                f'training set has {num_pids} identities')
        problems += self._camera_problems(model, dataset, 'training set')
        if problems:
            raise ValueError('The config does not fit the training data:\n'
                             '  - ' + '\n  - '.join(problems))

    def before_val(self, runner) -> None:
        if not getattr(self, '_val_checked', False):
            self._check_eval_cameras(runner, runner.val_loop.dataloader,
                                     'validation set')
            self._val_checked = True

    def before_test(self, runner) -> None:
        self._check_eval_cameras(runner, runner.test_loop.dataloader,
                                 'test set')

    def _check_eval_cameras(self, runner, dataloader, name: str) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        dataset = dataloader.dataset
        problems = []
        for part in getattr(dataset, 'datasets', [dataset]):
            problems += self._camera_problems(model, part, name)
        if problems:
            raise ValueError(f'The config does not fit the {name}:\n'
                             '  - ' + '\n  - '.join(problems))

    @staticmethod
    def _camera_problems(model, dataset, name: str) -> list:
        backbone_cams = getattr(
            getattr(model, 'backbone', None), 'num_cams', 0)
        if not backbone_cams or not len(dataset):
            return []
        max_cam = max(
            dataset.get_data_info(i)['camid'] for i in range(len(dataset)))
        if max_cam < backbone_cams:
            return []
        split = getattr(dataset, 'split', None)
        where = f'{name} ({split})' if split else name
        data_cams = dataset.metainfo.get('num_cams')
        known = f'; {data_cams} cameras' if data_cams is not None else ''
        return [
            f'model.backbone.num_cams = {backbone_cams} but the {where} has '
            f'camera id {max_cam} (0-based{known})'
        ]
