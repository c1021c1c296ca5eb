"""The tools' arguments are what they do: select and label refuse train's --resume / --eval-only, the one-process
evaluate_pool_truth.py takes no launch flags, export_student.py checks its output against a --config-file."""
import os

import pytest
import torch
from detectron2.modeling import build_model

from pudet.config import get_pudet_cfg

from .helpers import WD_CONFIGS, load_script

BASE_YAML = os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")


@pytest.mark.parametrize("command", ["select", "label"])
@pytest.mark.parametrize("flag", ["--resume", "--eval-only"])
def test_select_and_label_refuse_train_flags(command, flag, capsys):
    with pytest.raises(SystemExit) as exit:
        load_script("tools", "purify_net.py").parse_args([command, flag])
    assert exit.value.code == 2
    assert f"{command}: error: --resume and --eval-only are train's: {command} resumes" in capsys.readouterr().err


def test_train_keeps_resume_and_eval_only():
    args = load_script("tools", "purify_net.py").parse_args(["train", "--resume", "--eval-only"])
    assert args.resume and args.eval_only


def test_evaluate_pool_truth_takes_a_config_and_no_launch_flags(capsys):
    tool = load_script("tools", "evaluate_pool_truth.py")
    args = tool.parse_args(["oracle-labels", "--k", "3", "--output-dir", "o", "--config-file", "c.yaml",
                            "WILD_DIGITS.SEED", "1"])
    assert (args.config_file, args.opts) == ("c.yaml", ["WILD_DIGITS.SEED", "1"])
    with pytest.raises(SystemExit):
        tool.parse_args(["oracle-labels", "--k", "3", "--output-dir", "o", "--num-gpus", "2"])


def test_export_student_checks_its_output_against_a_config(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint, exported = str(tmp_path / "model_0000249.pth"), str(tmp_path / "student.pth")
    torch.save({"model": build_model(get_pudet_cfg(BASE_YAML)).state_dict(), "iteration": 249}, checkpoint)
    tool = load_script("tools", "export_student.py")
    tool.main(["--config-file", BASE_YAML, checkpoint, exported])
    assert f"It loads strictly into the GeneralizedRCNN of {BASE_YAML}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="do not fit the model GeneralizedRCNN"):
        tool.main(["--config-file", BASE_YAML, checkpoint, exported, "MODEL.ROI_HEADS.NUM_CLASSES", "3"])
