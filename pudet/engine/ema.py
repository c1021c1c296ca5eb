"""An exponential moving average of a detector's weights (``MODEL_EMA``), evaluated and saved as the final model."""
import logging

import torch
from detectron2.engine import HookBase
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightEMA"]

logger = logging.getLogger(__name__)


class WeightEMA(HookBase):
    """Keeps ``torch.optim.swa_utils.AveragedModel``'s exponential moving average of the trained model's
    parameters and buffers, updated after every step, and puts it into the model after the last step, so that
    the final evaluation, ``model_final.pth`` and the exported student are the average. Its state is part of
    every checkpoint (detectron2's trainer saves its hooks' ``state_dict``), so a resumed training goes on with
    the same average.

    It must run before the checkpointer and the evaluation hooks (``build_first_hooks``)."""

    def __init__(self, decay: float):
        self._decay = decay
        self._average = None

    def _model(self):
        model = self.trainer.model
        return getattr(model, "module", model)  # unwrap DDP

    @property
    def average(self) -> AveragedModel:
        if self._average is None:
            self._average = AveragedModel(self._model(), multi_avg_fn=get_ema_multi_avg_fn(self._decay),
                                          use_buffers=True)
        return self._average

    def after_step(self):
        self.average.update_parameters(self._model())
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            with torch.no_grad():
                self._model().load_state_dict(self.average.module.state_dict())
            logger.info(f"The model's weights are now their moving average (decay {self._decay}, "
                        f"{int(self.average.n_averaged)} steps)")

    def state_dict(self):
        return {"average": self.average.state_dict()}

    def load_state_dict(self, state_dict):
        self.average.load_state_dict(state_dict["average"])
