"""SelfDistillRCNN: the frozen teacher, the losses it returns, errors, and a few-iteration training through
tools/train_net.py with a teacher of another depth, resume, and the exported plain student."""
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

import pudet
from pudet.modeling import SelfDistillRCNN, load_checkpoint
from pudet.modeling.self_distill import _class_deltas

from .helpers import FEW_ITERATIONS, WD_CONFIGS, load_script, tiny_opts


def _cfg(path, *opts):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


def _save_detector(cfg_path, out, *opts, seed=0):
    """A randomly initialised GeneralizedRCNN of ``cfg_path`` saved as a detectron2 checkpoint."""
    torch.manual_seed(seed)
    cfg = _cfg(cfg_path, *opts)
    model = build_model(cfg)
    torch.save({"model": model.state_dict()}, out)
    return out


@pytest.fixture(scope="module")
def teacher_r34(tmp_path_factory):
    """A config + weights of a ResNet-34 teacher (the student is the benchmark's ResNet-18)."""
    folder = tmp_path_factory.mktemp("teacher_r34")
    cfg_file = folder / "teacher.yaml"
    base = os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")
    cfg_file.write_text(f'_BASE_: "{base}"\nMODEL:\n  RESNETS:\n    DEPTH: 34\n  FPN:\n    OUT_CHANNELS: 64\n')
    weights = _save_detector(str(cfg_file), str(folder / "teacher.pth"), seed=1)
    return str(cfg_file), weights


# the test teacher is barely trained, so a fresh student is often nearer the ground truth than it, and the
# default (bounded) L_kdr is zero: tests of the losses' plumbing use Eq. 15's min, non-zero wherever they differ
KDR_MIN = ("MODEL.PUDET.KDR_MODE", "min")


def _student(teacher_r34, *opts):
    cfg_file, weights = teacher_r34
    cfg = _cfg(os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml"), "MODEL.PUDET.TEACHER_CONFIG", cfg_file,
               "MODEL.PUDET.TEACHER_WEIGHTS", weights, *opts)
    torch.manual_seed(0)
    return build_model(cfg)


def _batch():
    def item(boxes, classes):
        inst = Instances((64, 64))
        inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
        return {"image": torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), "instances": inst,
                "height": 64, "width": 64}

    torch.manual_seed(5)
    return [item([[4, 4, 30, 36], [34, 10, 60, 40]], [1, 3]), item([], [])]  # the second image has no box


def test_losses_and_frozen_teacher(teacher_r34):
    model = _student(teacher_r34, *KDR_MIN)
    assert isinstance(model, SelfDistillRCNN)
    teacher = model.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    # the teacher is outside the student's state dict and optimizer
    assert not any(k.startswith("teacher") for k in model.state_dict())
    own = {id(p) for p in model.parameters()}
    assert not any(id(p) in own for p in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    # adaptation convs map the student's 32 FPN channels to the teacher's 64, one per RPN level
    assert set(model.adapters) == {"p2", "p3", "p4", "p5", "p6"}
    assert model.adapters["p2"].in_channels == 32 and model.adapters["p2"].out_channels == 64

    model.train()
    assert model.training and not teacher.training
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with EventStorage() as storage:
        losses = model(_batch())
        assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc",
                               "loss_hint", "loss_kdc", "loss_kdr"}
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses["loss_hint"] > 0 and losses["loss_kdr"] > 0
        sum(losses.values()).backward()
        optimizer.step()
        scalars = storage.latest()
    assert 0.0 < scalars["distill/mask_fraction_p2"][0] < 1.0
    assert 0.0 <= scalars["distill/q_fraction"][0] <= 1.0
    assert "distill/roi_head/num_fg_samples" in scalars  # the teacher proposals' sampling, kept apart
    assert model.adapters["p2"].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_switches_and_weights(teacher_r34):
    model = _student(teacher_r34, "MODEL.PUDET.HINT_ON", "False", "MODEL.PUDET.KDR_ON", "False",
                     "MODEL.PUDET.KD_WEIGHT", "0.0")
    assert model.adapters is None
    model.train()
    with EventStorage():
        losses = model(_batch())
    assert "loss_hint" not in losses and "loss_kdr" not in losses
    assert losses["loss_kdc"].item() == 0.0  # lambda = 0


def test_kdr_normalizer_and_mode(teacher_r34):
    """L_kdr over the teacher's sampled proposals (the default) is L_kdr over their foreground (Eq. 15) times the
    foreground share of the sampled proposals; the bounded reading penalises only the proposals where the
    student is farther from the ground truth than the teacher (``distill/kdr_student_worse`` of them)."""
    kdr, scalars = {}, {}
    for mode, normalizer in (("min", "foreground"), ("min", "sampled"), ("bounded", "sampled")):
        model = _student(teacher_r34, "MODEL.PUDET.KDR_MODE", mode, "MODEL.PUDET.KDR_NORMALIZER", normalizer).train()
        torch.manual_seed(7)
        with EventStorage() as storage:
            kdr[mode, normalizer] = model(_batch())["loss_kdr"].item()
            scalars[mode, normalizer] = {k: v[0] for k, v in storage.latest().items()}
    s = scalars["min", "sampled"]
    fg, bg = s["distill/roi_head/num_fg_samples"], s["distill/roi_head/num_bg_samples"]
    assert 0 < fg and kdr["min", "foreground"] > 0
    assert kdr["min", "sampled"] == pytest.approx(kdr["min", "foreground"] * fg / (fg + bg), rel=1e-5)
    assert 0.0 <= s["distill/kdr_teacher_nearer"] <= 1.0 and 0.0 <= s["distill/kdr_student_worse"] <= 1.0
    assert (kdr["bounded", "sampled"] > 0) == (s["distill/kdr_student_worse"] > 0)
    with pytest.raises(ValueError, match="KDR_MODE"):
        _student(teacher_r34, "MODEL.PUDET.KDR_MODE", "nearest")


def test_inference_is_the_students(teacher_r34):
    model = _student(teacher_r34).eval()
    plain = GeneralizedRCNN(_cfg(os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("adapters.")})
    plain.eval()
    batch = _batch()
    with torch.no_grad():
        ours, theirs = model(batch), plain(batch)
    for a, b in zip(ours, theirs):
        assert torch.equal(a["instances"].pred_boxes.tensor, b["instances"].pred_boxes.tensor)


def test_teacher_errors(teacher_r34, tmp_path):
    cfg_file, _ = teacher_r34
    with pytest.raises(FileNotFoundError, match="TEACHER_WEIGHTS"):
        _student((cfg_file, str(tmp_path / "nothing.pth")))
    # weights of a detector with 3 classes for a 5-class teacher
    three = _save_detector(cfg_file, str(tmp_path / "three.pth"), "MODEL.ROI_HEADS.NUM_CLASSES", "3")
    with pytest.raises(ValueError, match="another number of classes"):
        _student((cfg_file, three))
    # a teacher config of other classes than the student
    with pytest.raises(ValueError, match="classes"):
        _student((cfg_file, three), "MODEL.ROI_HEADS.NUM_CLASSES", "3")


def test_teacher_of_table3_from_the_config_its_training_dumped(tmp_path):
    """The demo's Table 3 distils from its larger teacher (configs/WildDigits/faster_rcnn_R34_FPN_teacher.yaml)
    through the config.yaml its training wrote (the command line's keys applied): a half-width ResNet-34 under the
    student's 32-channel FPN, its 3 classes read from that file, the adapters 32 -> 32 channels, the identity."""
    cfg = _cfg(os.path.join(WD_CONFIGS, "faster_rcnn_R34_FPN_teacher.yaml"), "MODEL.ROI_HEADS.NUM_CLASSES", "3",
               "WILD_DIGITS.PRETRAIN.ENABLED", "False")
    dumped = tmp_path / "config.yaml"
    dumped.write_text(cfg.dump())  # as detectron2's default_setup writes it into OUTPUT_DIR
    weights = _save_detector(str(dumped), str(tmp_path / "model_final.pth"), seed=1)
    model = _student((str(dumped), weights), "MODEL.ROI_HEADS.NUM_CLASSES", "3")
    blocks = [len(getattr(model.teacher.backbone.bottom_up, f"res{i}")) for i in range(2, 6)]
    assert blocks == [3, 4, 6, 3] and model.teacher.roi_heads.num_classes == 3
    assert [len(getattr(model.backbone.bottom_up, f"res{i}")) for i in range(2, 6)] == [2, 2, 2, 2]
    assert {(a.in_channels, a.out_channels) for a in model.adapters.values()} == {(32, 32)}
    assert torch.equal(model.adapters["p2"].weight[:, :, 1, 1], torch.eye(32))
    model.train()
    with EventStorage():
        losses = model(_batch())
    assert {"loss_hint", "loss_kdc", "loss_kdr"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())


def _train_args(tiny_root, out, teacher, *extra, opts=()):
    cfg_file, weights = teacher
    opts = [
        *tiny_opts(tiny_root), "MODEL.PUDET.TEACHER_CONFIG", cfg_file, "MODEL.PUDET.TEACHER_WEIGHTS", weights,
        *FEW_ITERATIONS, "SOLVER.MAX_ITER", "3", "DATASETS.TEST", "('wild_digits_val',)", "OUTPUT_DIR", out, *opts,
    ]
    return default_argument_parser().parse_args(
        ["--config-file", os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml"), *extra, *opts])


@pytest.mark.slow
def test_train_resume_export(tiny_benchmark, tiny_root, teacher_r34, tmp_path):
    tool = load_script("tools", "train_net.py")
    out = str(tmp_path / "student")
    teacher_before = load_checkpoint(teacher_r34[1])["model"]
    torch.manual_seed(0)
    results = tool.main(_train_args(tiny_root, out, teacher_r34))
    assert 0.0 <= results["bbox"]["AP"] <= 100.0  # one test dataset: detectron2 drops its name

    final = load_checkpoint(os.path.join(out, "model_final.pth"))
    assert final["iteration"] == 2
    assert final["trainer"]["_trainer"]["optimizer"]["state"]  # SGD momentum buffers
    assert final["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 3
    assert any(k.startswith("adapters.") for k in final["model"])
    # resume restores student, adapters, optimizer momentum, scheduler and iteration
    from pudet.engine import DetectionTrainer

    trainer = DetectionTrainer(tool.setup(_train_args(tiny_root, out, teacher_r34, "--resume")))
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 3 and trainer.scheduler.last_epoch == 3
    saved = final["trainer"]["_trainer"]["optimizer"]["state"]
    restored = trainer.optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k]["momentum_buffer"], restored[k]["momentum_buffer"]) for k in saved)
    assert torch.equal(trainer.model.adapters["p3"].weight, final["model"]["adapters.p3.weight"])
    del trainer
    tool.main(_train_args(tiny_root, out, teacher_r34, "--resume", opts=["SOLVER.MAX_ITER", "5"]))
    with open(os.path.join(out, "log.txt")) as f:
        assert "Starting training from iteration 3" in f.read()
    resumed = load_checkpoint(os.path.join(out, "model_final.pth"))
    assert resumed["iteration"] == 4 and resumed["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 5
    # the teacher's file is untouched and its weights are bit-identical to what was loaded
    teacher_after = load_checkpoint(teacher_r34[1])["model"]
    assert all(torch.equal(teacher_before[k], teacher_after[k]) for k in teacher_before)

    # the final student, written by the trainer, loads into a plain GeneralizedRCNN with no missing key
    plain = GeneralizedRCNN(_cfg(os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")))
    student = load_checkpoint(os.path.join(out, "model_final_student.pth"))["model"]
    result = plain.load_state_dict(student, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(student["backbone.bottom_up.stem.conv1.weight"],
                       resumed["model"]["backbone.bottom_up.stem.conv1.weight"])
    # tools/export_student.py converts any training checkpoint the same way
    exported = str(tmp_path / "exported.pth")
    load_script("tools", "export_student.py").main([os.path.join(out, "model_final.pth"), exported])
    result = plain.load_state_dict(load_checkpoint(exported)["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_class_deltas_picks_each_proposals_class():
    deltas = torch.arange(3 * 12, dtype=torch.float32).view(3, 12)  # R = 3 proposals, K = 3 classes, 4 each
    picked = _class_deltas(deltas, torch.tensor([2, 0, 1]))
    assert picked.tolist() == [[8, 9, 10, 11], [12, 13, 14, 15], [28, 29, 30, 31]]
    agnostic = torch.arange(3 * 4, dtype=torch.float32).view(3, 4)
    assert torch.equal(_class_deltas(agnostic, torch.tensor([2, 0, 1])), agnostic)


def test_student_equal_to_its_teacher_has_zero_distillation_losses(tmp_path):
    """Every term on: identity adapters give L_hint = 0; the same box head on the same features and the
    teacher's proposals gives the same logits (L_kdc = KL(p || p) = 0) and deltas (L_kdr = 0)."""
    cfg_file = os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")
    weights = _save_detector(cfg_file, str(tmp_path / "teacher.pth"), seed=3)
    cfg = _cfg(os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml"), "MODEL.PUDET.TEACHER_WEIGHTS", weights)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    model.train()
    with EventStorage():
        losses = model(_batch())
    assert {k: losses[k].item() for k in ("loss_hint", "loss_kdc", "loss_kdr")} == pytest.approx(
        {"loss_hint": 0.0, "loss_kdc": 0.0, "loss_kdr": 0.0}, abs=1e-6)


def test_identity_adapters_give_zero_hint_for_a_student_equal_to_its_teacher(tmp_path):
    cfg_file = os.path.join(WD_CONFIGS, "Base-WildDigits.yaml")
    weights = _save_detector(cfg_file, str(tmp_path / "teacher.pth"), seed=3)
    cfg = _cfg(os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml"), "MODEL.PUDET.TEACHER_WEIGHTS", weights,
               "MODEL.PUDET.KDC_ON", "False", "MODEL.PUDET.KDR_ON", "False")
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)  # MODEL.WEIGHTS = the teacher: the student starts equal to it
    model.train()
    with EventStorage():
        losses = model(_batch())
    assert losses["loss_hint"].item() == pytest.approx(0.0, abs=1e-6)


def test_no_teacher_proposal_gives_zero_box_distillation(teacher_r34):
    """A batch of images without boxes on which the teacher proposes nothing (an early teacher can): R = 0
    proposals, so L_kdc = L_kdr = 0, connected to the student (it used to be a reshape error)."""
    model = _student(teacher_r34).train()

    def no_proposals(images, features, gt_instances=None):
        return [Instances(size, proposal_boxes=Boxes(torch.zeros(0, 4)), objectness_logits=torch.zeros(0))
                for size in images.image_sizes], {}

    model.teacher.proposal_generator.forward = no_proposals
    batch = _batch()[1:] * 2  # two images without boxes
    with EventStorage() as storage:
        losses = model(batch)
        q_fraction = storage.latest()["distill/q_fraction"][0]
    assert losses["loss_kdc"].item() == 0.0 and losses["loss_kdr"].item() == 0.0
    assert losses["loss_kdc"].requires_grad and losses["loss_kdr"].requires_grad
    assert q_fraction == 0.0
    sum(losses.values()).backward()


def test_box_head_on_the_proposals_that_count_changes_no_loss_or_gradient(teacher_r34):
    """The student's box head runs only on the teacher proposals with q_i = 1 or in the foreground (the others
    enter neither L_kdc nor L_kdr): same losses and gradients as running it on every proposal."""
    results = []
    for subset in (False, True):
        model = _student(teacher_r34, *KDR_MIN).train()
        if not subset:
            model._box_head_mixes_proposals = lambda: True  # the path a box head with batch norm takes
        torch.manual_seed(7)
        with EventStorage():
            losses = model(_batch())
        (losses["loss_kdc"] + losses["loss_kdr"]).backward()
        grads = {n: p.grad.clone() for n, p in model.roi_heads.named_parameters() if p.grad is not None}
        results.append((losses, grads))
    (full, full_grads), (subset, subset_grads) = results
    assert full["loss_kdc"].item() > 0 and full["loss_kdr"].item() > 0
    for key in ("loss_kdc", "loss_kdr", "loss_cls", "loss_hint"):
        assert subset[key].item() == pytest.approx(full[key].item(), rel=1e-5)
    assert set(subset_grads) == set(full_grads) and full_grads
    for name in full_grads:
        assert torch.allclose(subset_grads[name], full_grads[name], rtol=1e-4, atol=1e-7), name


def test_one_box_head_pass_gives_the_losses_and_gradients_of_two(teacher_r34):
    """The student's box head runs once on its own sampled proposals and the teacher's together (per image,
    outputs split back): every loss, gradient and logged scalar is that of two passes (the ROI heads' own
    forward, then the box head on the teacher's proposals)."""
    results = []
    for one_pass in (True, False):
        model = _student(teacher_r34, *KDR_MIN).train()
        assert model._one_box_head_pass()
        if not one_pass:
            model._one_box_head_pass = lambda: False
        torch.manual_seed(7)
        with EventStorage() as storage:
            losses = model(_batch())
            scalars = {k: v[0] for k, v in storage.latest().items()}
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((losses, grads, scalars))
    (one, one_grads, one_scalars), (two, two_grads, two_scalars) = results
    assert set(one) == set(two) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc", "loss_hint",
                                    "loss_kdc", "loss_kdr"}
    assert two["loss_kdc"].item() > 0 and two["loss_kdr"].item() > 0 and two["loss_box_reg"].item() > 0
    for key in two:
        assert one[key].item() == pytest.approx(two[key].item(), rel=1e-6, abs=1e-6), key
    assert one_scalars == pytest.approx(two_scalars, rel=1e-6)
    assert set(one_grads) == set(two_grads) and any(n.startswith("roi_heads.box_head") for n in two_grads)
    for name, g in two_grads.items():  # equal but for the order of float sums (relative differences ~1e-6)
        assert (one_grads[name] - g).norm() <= 1e-5 * g.norm(), name


def test_teacher_reuses_the_students_images_when_it_would_preprocess_them_alike(teacher_r34, tmp_path):
    assert _student(teacher_r34)._same_preprocessing()
    cfg_file, _ = teacher_r34
    other = tmp_path / "teacher_std.yaml"
    other.write_text(f'_BASE_: "{cfg_file}"\nMODEL:\n  PIXEL_STD: [32.0, 32.0, 32.0]\n')
    weights = _save_detector(str(other), str(tmp_path / "teacher_std.pth"))
    cfg = _cfg(os.path.join(WD_CONFIGS, "student_R18_FPN_sd.yaml"), "MODEL.PUDET.TEACHER_CONFIG", str(other),
               "MODEL.PUDET.TEACHER_WEIGHTS", weights)
    model = build_model(cfg).train()
    assert not model._same_preprocessing()
    with EventStorage():
        assert torch.isfinite(model(_batch())["loss_hint"])
