# Copyright (c) mmtfclip contributors. All rights reserved.
import copy
import os.path as osp
import time
from typing import Optional

import mmengine
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint_to_model,
                                        weights_to_cpu)
from mmengine.utils import apply_to, get_git_hash

from mmtfclip.compat import load_checkpoint
from mmtfclip.fileio import check_finite, save_file
from mmtfclip.registry import RUNNERS
from mmtfclip.utils.launch import prepare_run_config
from .checkpoint import from_plain_checkpoint, to_plain_checkpoint


@RUNNERS.register_module()
class ReIDRunner(Runner):
    """mmengine's ``Runner``, with everything an mmtfclip run needs taken
    from its config.

    ``configs/_base_/default_runtime.py`` names it as ``runner_type``, so
    ``RUNNERS.build(cfg)`` (what every tool calls) gives the same run from a
    tool, from Python and from the config dumped into ``work_dir``. On top
    of mmengine's runner:

    * :meth:`from_cfg` runs :func:`mmtfclip.utils.launch.
      prepare_run_config`: data-loader defaults, the split of a global batch
      across ``cfg.launcher``'s processes, the config checks, CPU-only
      distributed set-up and CPU threads.
    * Checkpoints hold plain data only (the message hub's buffers turned
      into tensors), are written atomically with their content digest
      (:func:`mmtfclip.fileio.save_file`) and are read with
      ``weights_only=True`` and the digest checked.
    * Every checkpoint read (``resume``, ``load_from``, a test) must fit
      the model: :func:`mmtfclip.apis.check_checkpoint`, the check of
      :func:`mmtfclip.apis.init_model`. ``load_from_skip_head=True`` in
      the config keeps the model's own head when fine-tuning from a
      checkpoint of other identities (logged).
    * ``resume=True`` without ``load_from`` resumes from the checkpoint
      that ``work_dir/last_checkpoint`` names and is an error when there is
      none, so a mistyped work dir never starts over and overwrites the
      checkpoints of an earlier run.
    * The config is written into ``work_dir`` by :meth:`train` only; a test
      writes it into its own timestamped log folder, so testing never
      overwrites the training run's config.
    """

    #: Set from the config's ``load_from_skip_head`` by :meth:`from_cfg`.
    load_from_skip_head = False

    @classmethod
    def from_cfg(cls, cfg) -> 'ReIDRunner':
        """Build the runner of ``cfg`` (not modified).

        Args:
            cfg (Config): The whole run.

        Returns:
            ReIDRunner: The runner.
        """
        cfg = copy.deepcopy(cfg)
        prepare_run_config(cfg)
        runner = super().from_cfg(cfg)
        runner.load_from_skip_head = bool(
            cfg.get('load_from_skip_head', False))
        return runner

    def dump_config(self) -> None:
        """Deferred to :meth:`train` and :meth:`test` (see the class)."""

    @master_only
    def _dump_config_to(self, folder: str) -> None:
        if self.cfg.filename is not None:
            filename = osp.basename(self.cfg.filename)
        else:
            filename = f'{self.timestamp}.py'
        self.cfg.dump(osp.join(folder, filename))

    def train(self):
        self._dump_config_to(self.work_dir)
        return super().train()

    def val(self) -> dict:
        self._dump_config_to(self.log_dir)
        return super().val()

    def test(self) -> dict:
        self._dump_config_to(self.log_dir)
        return super().test()

    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            self._load_from = self._last_checkpoint()
        super().load_or_resume()

    def _last_checkpoint(self) -> Optional[str]:
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        path = None
        if osp.isfile(pointer):
            with open(pointer) as f:
                path = f.read().strip()
        if not path or not osp.isfile(path):
            # A hook that works before the training loop (CLIP-ReID's
            # prompt learning) may have saved its own progress: the run is
            # resumed there, with no training checkpoint to load yet.
            for hook in self.hooks:
                state = getattr(hook, 'resume_state', lambda runner: None)(
                    self)
                if state is not None:
                    self.logger.info(
                        f'No training checkpoint yet ({pointer}); '
                        f'{type(hook).__name__} resumes from {state}.')
                    return None
            found = ('does not exist' if path is None else 'is empty'
                     if not path else f'names {path}, which does not exist')
            raise FileNotFoundError(
                f'Nothing to resume from: {pointer} {found}. resume=True '
                '(--resume without a path) continues the run whose '
                'checkpoints are in the work dir; give the checkpoint as '
                '--resume PATH, or train without --resume to start over.')
        self.logger.info(f'Resuming from {path} (named by {pointer}).')
        return path

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]) -> dict:
        """Read a checkpoint (plain data only), check that it fits the
        model, and load its weights.

        Args:
            filename (str): Path or URL.
            map_location (str or callable): As for :func:`torch.load`.
                Defaults to 'cpu'.
            strict (bool): Passed to mmengine's loader; the fit is checked
                either way. Defaults to False.
            revise_keys (list): ``(pattern, replacement)`` pairs applied to
                the weight names. Defaults to stripping ``module.``.

        Returns:
            dict: The checkpoint, its message hub rebuilt.

        Raises:
            mmtfclip.apis.CheckpointMismatchError: If the checkpoint does
                not fit the config, listing every mismatch.
            mmtfclip.fileio.UnsafeFileError: If it holds NaN or infinite
                weights, naming them.
        """
        from mmtfclip.apis.inference import _strip_module, check_checkpoint
        checkpoint = load_checkpoint(filename, map_location=map_location)
        if not isinstance(checkpoint, dict):
            raise TypeError(f'{filename} holds no checkpoint dict.')
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        state_dict = _strip_module(checkpoint.get('state_dict', checkpoint))
        if self.load_from_skip_head and not self._resume:
            own = model.state_dict()
            head = [k for k in own if k.startswith('head.')]
            state_dict = {
                k: v
                for k, v in state_dict.items() if not k.startswith('head.')
            }
            state_dict.update({k: own[k] for k in head})
            checkpoint['state_dict'] = state_dict
            self.logger.warning(
                f'load_from_skip_head=True: the head of {filename} is not '
                f'loaded; its {len(head)} weights keep the config\'s '
                'initialisation.')
        # NaN or infinite weights (another run's divergence) never load.
        check_finite(state_dict, str(filename), what='checkpoint')
        meta = checkpoint.get('meta')
        if hasattr(model, 'backbone') and hasattr(model, 'head'):
            # The recognizers' check (models of other kinds have none).
            check_checkpoint(model, state_dict,
                             meta if isinstance(meta, dict) else {}, filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys)
        from_plain_checkpoint(checkpoint)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """Save a checkpoint of plain data, atomically, with its digest.

        Holds what mmengine's ``Runner.save_checkpoint`` saves (``meta``,
        ``state_dict``, ``message_hub``, ``optimizer``,
        ``param_schedulers``) and calls the ``before_save_checkpoint``
        hooks the same way; ``CheckpointHook`` saves through it.

        Args:
            out_dir (str): Local folder of the checkpoint.
            filename (str): The checkpoint's file name.
            file_client_args (dict, optional): Not supported (local files
                only). Defaults to None.
            save_optimizer (bool): Save the optimizer state.
                Defaults to True.
            save_param_scheduler (bool): Save the schedulers' states.
                Defaults to True.
            meta (dict, optional): Extra meta information. Defaults to None.
            by_epoch (bool): Count ``meta['epoch']``/``['iter']`` as
                mmengine does for epoch-based saving. Defaults to True.
            backend_args (dict, optional): Not supported (local files
                only). Defaults to None.
        """
        if file_client_args or backend_args or '://' in str(out_dir):
            raise ValueError(
                'ReIDRunner writes checkpoints to local folders only; got '
                f'out_dir={out_dir!r} with backend arguments.')
        meta = dict(meta or {})
        if by_epoch:
            # Called from after_train_epoch, before the epoch count moves.
            meta.setdefault('epoch', self.epoch + 1)
            meta.setdefault('iter', self.iter)
        else:
            meta.setdefault('epoch', self.epoch)
            meta.setdefault('iter', self.iter + 1)
        meta.update(
            cfg=self.cfg.pretty_text,
            seed=self.seed,
            experiment_name=self.experiment_name,
            time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
            mmengine_version=mmengine.__version__ + get_git_hash())
        if hasattr(self.train_dataloader.dataset, 'metainfo'):
            meta.update(dataset_meta=self.train_dataloader.dataset.metainfo)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model

        def to_cpu(state):
            return apply_to(state, lambda x: hasattr(x, 'cpu'),
                            lambda x: x.cpu())

        checkpoint = dict(
            meta=meta,
            state_dict=weights_to_cpu(model.state_dict()),
            message_hub=to_cpu(self.message_hub.state_dict()))
        if save_optimizer:
            if not isinstance(self.optim_wrapper, OptimWrapper):
                raise TypeError('self.optim_wrapper should be an '
                                '`OptimWrapper` or `OptimWrapperDict`, got '
                                f'{self.optim_wrapper}')
            checkpoint['optimizer'] = to_cpu(self.optim_wrapper.state_dict())
        if save_param_scheduler and self.param_schedulers is not None:
            if isinstance(self.param_schedulers, dict):
                checkpoint['param_schedulers'] = {
                    name: [s.state_dict() for s in schedulers]
                    for name, schedulers in self.param_schedulers.items()
                }
            else:
                checkpoint['param_schedulers'] = [
                    s.state_dict() for s in self.param_schedulers
                ]
        self.call_hook('before_save_checkpoint', checkpoint=checkpoint)
        save_file(to_plain_checkpoint(checkpoint), osp.join(out_dir, filename))
