"""The moving average of a detector's weights (MODEL_EMA): the final weights against a hand computation, a
resumed training against an uninterrupted one, and the config's check."""
import copy

import pytest
import torch
from detectron2.engine import HookBase, SimpleTrainer
from torch import nn

from pudet.config import check_config, get_pudet_cfg
from pudet.engine.ema import WeightEMA


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, batch):
        self.steps += 1
        return {"loss": ((self.linear(batch[0]) - batch[1]) ** 2).mean()}


class _RecordWeights(HookBase):
    """Records the trained (not averaged) weights after each step."""

    def __init__(self, record):
        self.record = record

    def after_step(self):
        self.record.append(copy.deepcopy(self.trainer.model.state_dict()))


def _batches(start):
    """The batches of a data loader from step ``start`` on (a resumed loader starts where the run stopped)."""
    g = torch.Generator().manual_seed(0)
    for step in range(10 ** 6):
        x = torch.randn(4, 2, generator=g)
        if step >= start:
            yield x, x.sum(1, keepdim=True) + 1


class _Crash(HookBase):
    def __init__(self, at):
        self.at = at

    def after_step(self):
        if self.trainer.iter == self.at:
            raise RuntimeError("killed")


def _trainer(model, record, *hooks, start=0):
    trainer = SimpleTrainer(model, _batches(start), torch.optim.SGD(model.parameters(), lr=0.1))
    # the recorder runs first, so it sees the trained weights of the last step before they are averaged
    trainer.register_hooks([_RecordWeights(record), WeightEMA(0.5), *hooks])
    return trainer


def test_the_final_weights_are_the_moving_average_of_every_steps_weights():
    torch.manual_seed(0)
    model, record = _Model(), []
    _trainer(model, record).train(0, 4)
    expected = copy.deepcopy(record[0])  # the average starts at the first step's weights
    for weights in record[1:]:
        expected = {k: 0.5 * expected[k] + 0.5 * w for k, w in weights.items()}
    final = model.state_dict()
    assert len(record) == 4 and not torch.equal(record[-1]["linear.weight"], final["linear.weight"])
    for k in expected:
        torch.testing.assert_close(final[k], expected[k])
    assert final["steps"].item() == 3.125  # buffers are averaged too: 1, 1.5, 2.25, 3.125


def test_a_resumed_training_goes_on_with_the_same_average():
    torch.manual_seed(0)
    whole = _Model()
    first = copy.deepcopy(whole)
    _trainer(whole, []).train(0, 6)

    # the same training, killed after 3 steps and resumed from the trainer's state (what its checkpoint holds)
    stopped = _trainer(first, [], _Crash(at=2))
    with pytest.raises(RuntimeError, match="killed"):
        stopped.train(0, 6)
    saved = copy.deepcopy(stopped.state_dict())
    model = copy.deepcopy(first)  # the weights of the stopped run (the checkpoint's model)
    resumed = _trainer(model, [], start=3)
    resumed.optimizer.load_state_dict(stopped.optimizer.state_dict())
    resumed.load_state_dict(saved)
    assert "WeightEMA" in saved["hooks"]
    resumed.train(resumed.iter + 1, 6)
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_the_decay_is_checked():
    cfg = get_pudet_cfg("", ["MODEL_EMA.DECAY", "1.0"])
    with pytest.raises(ValueError, match=r"MODEL_EMA.DECAY = 1.0 \(config x.yaml\): give a decay in \[0, 1\)"):
        check_config(cfg, "x.yaml", dataset_keys=())
