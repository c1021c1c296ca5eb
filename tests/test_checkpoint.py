"""pudet.modeling.load_checkpoint: checkpoints read through detectron2's DetectionCheckpointer.load."""
import pytest
import torch

from pudet.modeling import load_checkpoint


def test_reads_a_detectron2_checkpoint_and_bare_weights(tmp_path):
    weights = {"backbone.w": torch.arange(3.0), "head.b": torch.tensor([7.0])}
    full = str(tmp_path / "model_0000003.pth")
    torch.save({"model": weights, "iteration": 3, "scheduler": {"last_epoch": 4}}, full)
    checkpoint = load_checkpoint(full)
    assert checkpoint.keys() == {"model", "iteration", "scheduler"}
    assert checkpoint["iteration"] == 3 and checkpoint["scheduler"] == {"last_epoch": 4}
    assert checkpoint["model"].keys() == weights.keys()
    assert all(torch.equal(checkpoint["model"][k], weights[k]) for k in weights)
    bare = str(tmp_path / "bare.pth")
    torch.save(weights, bare)
    assert list(load_checkpoint(bare)) == ["model"]
    assert torch.equal(load_checkpoint(bare)["model"]["head.b"], torch.tensor([7.0]))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))
    with pytest.raises(FileNotFoundError):
        load_checkpoint("")
