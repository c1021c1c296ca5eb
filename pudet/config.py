"""pudet's config keys, added to a detectron2 config by :func:`add_pudet_config`."""
import logging

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.utils.logger import log_first_n

__all__ = ["add_pudet_config", "check_config", "get_pudet_cfg", "pseudo_score_thresh"]


def add_pudet_config(cfg):
    """Adds pudet's keys, with their defaults, to ``cfg`` (a detectron2 ``get_cfg()``). Idempotent."""
    if "WILD_DIGITS" in cfg:
        return cfg
    _add_wild_digits_config(cfg)
    _add_glyph_pretrain_config(cfg)
    _add_pu_config(cfg)
    _add_region_pu_config(cfg)
    _add_self_distill_config(cfg)
    _add_pseudo_label_config(cfg)
    _add_coco_format_config(cfg)
    _add_model_ema_config(cfg)
    return cfg


def _add_wild_digits_config(cfg):
    """The built-in wild-digits benchmark (pudet.data.datasets.wild_digits): registered as "wild_digits_train"
    (the labeled set L), "wild_digits_pool" (the unlabeled pool U, its hidden truth kept apart for evaluation)
    and "wild_digits_val" by every pudet tool. The same values give the same files."""
    _C = cfg
    _C.WILD_DIGITS = CN()
    # folder holding the built benchmarks; "" = $DETECTRON2_DATASETS/wild_digits
    _C.WILD_DIGITS.ROOT = ""
    # seed of the whole benchmark (every image and the pool's positive/negative draw)
    _C.WILD_DIGITS.SEED = 0
    # side of the square scenes, in pixels
    _C.WILD_DIGITS.IMAGE_SIZE = 128
    # number of labeled scenes in L (all positive, every known digit boxed)
    _C.WILD_DIGITS.NUM_LABELED = 200
    # number of scenes in the unlabeled pool U
    _C.WILD_DIGITS.NUM_POOL = 2000
    # number of validation scenes (positive, drawn from handwriting that L and U never use)
    _C.WILD_DIGITS.NUM_VAL = 300
    # fraction pi_p of positive scenes (holding known digits) in U; the rest hold only unknown things and clutter
    _C.WILD_DIGITS.POS_FRACTION = 0.25
    # fraction of pool scenes drawn object-centric (1-2 large objects on a coloured gradient: the web-image
    # look of ImageNet), positives and negatives alike; the other pool scenes look like L's
    _C.WILD_DIGITS.OBJECT_CENTRIC_FRACTION = 0.5
    # fraction of the other scenes (L, val, the rest of the pool) drawn as close-ups of 1-2 large objects
    _C.WILD_DIGITS.LARGE_FRACTION = 0.2
    # the unknown things' families, as weights: printed letters and symbols, shapes, unknown digits
    _C.WILD_DIGITS.UNKNOWN_MIX = [0.55, 0.25, 0.20]
    # the digit classes the detector is taught; the other digits appear only as unlabeled "things in the wild"
    _C.WILD_DIGITS.KNOWN_CLASSES = [0, 1, 2, 3, 4]


def _add_glyph_pretrain_config(cfg):
    """The benchmark's own "ImageNet pretraining" (pudet.data.datasets.glyph_pretrain): the detector's bottom-up
    ResNet pretrained on classifying crops of every glyph class (digits, letters, symbols, shapes), built once and
    cached beside the benchmark under a hash of these keys and the backbone's architecture."""
    _C = cfg
    _C.WILD_DIGITS.PRETRAIN = CN()
    # tools/train_net.py starts from it (sets MODEL.WEIGHTS) when MODEL.WEIGHTS is ""
    _C.WILD_DIGITS.PRETRAIN.ENABLED = False
    # seed of the crops and of the training
    _C.WILD_DIGITS.PRETRAIN.SEED = 0
    # number of distinct crops (drawn again each epoch) and their side in pixels
    _C.WILD_DIGITS.PRETRAIN.NUM_IMAGES = 20000
    _C.WILD_DIGITS.PRETRAIN.CROP_SIZE = 32
    # the training: AdamW, linear warmup then cosine decay over ITERS iterations of BATCH_SIZE crops
    _C.WILD_DIGITS.PRETRAIN.ITERS = 2400
    _C.WILD_DIGITS.PRETRAIN.BATCH_SIZE = 64
    _C.WILD_DIGITS.PRETRAIN.BASE_LR = 0.002
    _C.WILD_DIGITS.PRETRAIN.WEIGHT_DECAY = 0.0001


def _add_pu_config(cfg):
    """The PU classifier N_pu (pudet.modeling.pu_classifier), its training and the selection
    (tools/purify_net.py)."""
    _C = cfg
    _C.PU = CN()
    # datasets of labeled images: the positive set L
    _C.PU.LABELED_DATASETS = ("wild_digits_train",)
    # datasets of unlabeled images: the pool U to purify
    _C.PU.UNLABELED_DATASETS = ("wild_digits_pool",)
    # a folder (any depth) or list file of images to use as the pool instead: registered as "pool:<abs path>"
    # and made PU.UNLABELED_DATASETS by the tools (pudet.data.datasets.use_pool_option); "" = none
    _C.PU.POOL = ""
    # the PU splits are registered as <prefix>_train_labeled, <prefix>_train_unlabeled and <prefix>_holdout
    # (pudet.data.build.PUSplits); another prefix lets a process hold a second PU configuration
    _C.PU.SPLITS_PREFIX = "pu"
    # fraction of L and of U held out from training for validation (the "<prefix>_holdout" split)
    _C.PU.HOLDOUT_FRACTION = 0.1
    # cap on the held-out images of each of L and U (keeps validation short on a 1.28M-image pool)
    _C.PU.HOLDOUT_MAX = 2000
    # risk: "nnpu" (Eq. 6, the paper's), "upu" (Eq. 5) or "pn" (U taken as negative, a naive baseline)
    _C.PU.RISK = "nnpu"
    # surrogate loss l(z, y): "sigmoid" (sigmoid(-yz)) or "logistic" (softplus(-yz))
    _C.PU.LOSS = "sigmoid"
    # class prior pi_p of positives in U, in (0, 1); -1 = estimate it from the data (PU.PRIOR_ESTIMATOR)
    _C.PU.PRIOR = -1.0
    # how pi_p is estimated, from held-out scores of a labeled-vs-unlabeled classifier (pudet.pu.prior):
    # "bbe" (best bin estimation, Garg et al. 2021) or "elkan-noto" (Elkan & Noto 2008)
    _C.PU.PRIOR_ESTIMATOR = "bbe"
    # unlabeled images sampled to estimate the prior when PU.PRIOR = -1
    _C.PU.PRIOR_SAMPLES = 4000
    # the estimate's interval (region head): the central PRIOR_INTERVAL_LEVEL of the estimator over
    # PRIOR_INTERVAL_RESAMPLES bootstrap resamples of the held-out scores, spread over the cross-fits; an
    # interval wider than PRIOR_INTERVAL_WARN is logged as a warning that suggests setting PU.PRIOR by hand
    _C.PU.PRIOR_INTERVAL_LEVEL = 0.9
    _C.PU.PRIOR_INTERVAL_RESAMPLES = 200
    _C.PU.PRIOR_INTERVAL_WARN = 0.1
    # nnPU: the defitting step triggers when R_u^- - pi_p R_p^- < -BETA; GAMMA scales that step
    _C.PU.BETA = 0.0
    _C.PU.GAMMA = 1.0
    # fraction of each training batch taken from L (the rest from U)
    _C.PU.LABELED_FRACTION = 0.5
    # images are resized to this square side before the backbone
    _C.PU.INPUT_SIZE = 128
    # backbone feature maps the head reads (several levels need one channel count, as an FPN's p2-p6)
    _C.PU.IN_FEATURES = ["res5"]
    # "avg" / "max": each map pooled globally, averaged over levels, then the linear head (an image
    # classifier's); "score-max": the head scores every location of every map and g(x) is the highest
    # (multiple-instance learning: one known object among clutter makes the image positive)
    _C.PU.POOLING = "avg"
    # the classifier: "image" (the paper's: backbone, pooling, linear head; trained by PUTrainer) or "region"
    # (the frozen detector's proposals scored one by one, the image's score = the best region's: PU.REGION)
    _C.PU.HEAD = "image"
    # detector checkpoint whose backbone (bottom-up, or the whole FPN when MODEL.BACKBONE.NAME builds
    # one) initialises the classifier; "" = none. The region head reads this detector's regions (required)
    _C.PU.INIT_FROM_DETECTOR = ""


def _add_region_pu_config(cfg):
    """The region head (``PU.HEAD: region``, pudet.modeling.region_pu): the frozen detector of
    ``PU.INIT_FROM_DETECTOR`` proposes regions, a small head scores each, an image scores as its best region."""
    _C = cfg
    _C.PU.REGION = CN()
    # yaml of that detector (e.g. the teacher's config); "" = this config, built as a GeneralizedRCNN
    _C.PU.REGION.DETECTOR_CONFIG = ""
    # input scales at which the detector proposes regions (1.0 = its test size; 0.5 also finds objects
    # up to twice as large as those it was trained on)
    _C.PU.REGION.SCALES = [1.0, 0.5]
    # regions per image and scale: the detector's best RPN proposals
    _C.PU.REGION.TOPK = 50
    # extra positives: this many zoomed, colour-changed crops around labeled objects per labeled image, so
    # that L (scenes) also covers the object-centric look of the pool (0 = none)
    _C.PU.REGION.CROP_VIEWS = 0
    # where region features are cached; "" = OUTPUT_DIR/features
    _C.PU.REGION.FEATURE_DIR = ""
    # what the head reads of each region: "logprobs" = the detector's K + 1 class log-probabilities only;
    # "box+logprobs" = also its box-head feature (FC_DIM values)
    _C.PU.REGION.FEATURES = "logprobs"
    # the class prior (PU.PRIOR -1): each estimator's median over this many cross-fits (other folds, head seeds)
    _C.PU.REGION.PRIOR_REPEATS = 5
    # the head: 0 = linear on standardised region features, > 0 = one hidden layer of this width
    _C.PU.REGION.HIDDEN_DIM = 0
    # its training (Adam on cached features): steps, learning rate, weight decay, bags per side per step
    _C.PU.REGION.ITERS = 300
    _C.PU.REGION.LR = 0.01
    _C.PU.REGION.WEIGHT_DECAY = 1e-4
    _C.PU.REGION.BATCH_BAGS = 64


def _add_self_distill_config(cfg):
    """Self-distillation (pudet.modeling.self_distill, ``MODEL.META_ARCHITECTURE: SelfDistillRCNN``):
    L = L_det + HINT_WEIGHT * L_hint + KD_WEIGHT * (L_kdc + L_kdr)  (paper Eq. 8)."""
    _C = cfg
    _C.MODEL.PUDET = CN()
    # yaml of the frozen teacher D_t (a GeneralizedRCNN, e.g. of another depth); "" = the student's own config
    _C.MODEL.PUDET.TEACHER_CONFIG = ""
    # the teacher's checkpoint (required; MODEL.WEIGHTS initialises the student only)
    _C.MODEL.PUDET.TEACHER_WEIGHTS = ""
    # gamma: weight of the hint loss on the FPN levels (Eq. 11)
    _C.MODEL.PUDET.HINT_WEIGHT = 1.0
    # lambda: weight of the ground-truth-bounded distillation L_kdc + L_kdr (Eqs. 14-15)
    _C.MODEL.PUDET.KD_WEIGHT = 1.0
    # T: distillation temperature of L_kdc (Eqs. 12-13)
    _C.MODEL.PUDET.TEMPERATURE = 2.0
    # beta of the smooth L1 that measures L_kdr's two distances (Eq. 15); 0 = the paper's L1, > 0 = a
    # gradient that vanishes as the student's box nears the target
    _C.MODEL.PUDET.KDR_BETA = 0.0
    # L_kdr's reading of Eq. 15: "bounded", the ground truth is the target wherever the student is not better
    # than the teacher by KDR_MARGIN (the bound the paper's text describes, Chen et al. 2017: a wrong teacher box
    # is never a target); "min", as written: the nearer of the teacher's and the ground truth's deltas
    _C.MODEL.PUDET.KDR_MODE = "bounded"
    # m of the "bounded" reading, in the distance of KDR_BETA
    _C.MODEL.PUDET.KDR_MARGIN = 0.0
    # what L_kdr's sum over the foreground proposals is divided by: "sampled", the number of the teacher's
    # sampled proposals, as detectron2's own box loss is averaged; "foreground", their foreground count (Eq. 15
    # as written), which weighs each box several times L_det's and drowns what pool images add
    _C.MODEL.PUDET.KDR_NORMALIZER = "sampled"
    # psi: the imitation mask keeps anchors with IoU > psi * (the box's max IoU on that level)
    _C.MODEL.PUDET.IMITATION_PSI = 0.5
    # deprecated: DATASETS.PSEUDO_SCORE_THRESH (still honoured where set, with a warning; None = not set)
    _C.MODEL.PUDET.PSEUDO_SCORE_THRESH = None
    # switches of the three distillation terms (the paper's Table 3 ablation)
    _C.MODEL.PUDET.HINT_ON = True
    _C.MODEL.PUDET.KDC_ON = True
    _C.MODEL.PUDET.KDR_ON = True


def _add_pseudo_label_config(cfg):
    """Training on L and pseudo-labelled U^P (pudet.data.build.build_expanded_train_loader)."""
    _C = cfg
    # pseudo-label files written by `purify_net.py label`, trained on beside DATASETS.TRAIN (the labeled set)
    _C.DATASETS.TRAIN_PSEUDO = ()
    # tau: pseudo-boxes scoring below this are dropped when a pseudo-label file is loaded (paper: 0.5)
    _C.DATASETS.PSEUDO_SCORE_THRESH = 0.5
    # keep pseudo-labelled images left with no box above tau (as background-only images); False drops them
    _C.DATASETS.PSEUDO_KEEP_EMPTY = False
    # box-level purification: drop pseudo-boxes whose region PU score (raw g; 0 = the PU classifier's decision
    # boundary) is below this; None = keep them. Needs a file labelled with `purify_net.py label --pu-weights`
    _C.DATASETS.PSEUDO_PU_SCORE_THRESH = None
    # "alternate": each batch from one source, PSEUDO_BATCHES pseudo-labelled batches then LABELED_BATCHES
    # labeled ones (the paper's mini-batches); "mixed": both sources in every batch, in that ratio
    _C.DATALOADER.PSEUDO_BATCHING = "alternate"
    _C.DATALOADER.PSEUDO_BATCHES = 1
    _C.DATALOADER.LABELED_BATCHES = 1
    # colour jitter of pseudo-labelled images: brightness, contrast, saturation factors in [1 - j, 1 + j]
    _C.INPUT.PSEUDO_COLOR_JITTER = 0.4


def _add_coco_format_config(cfg):
    """The user's own labeled datasets (pudet.data.datasets.coco_format), registered by every tool."""
    # COCO-format datasets to register, each (name, json_file, image_root); their names then serve in
    # DATASETS.TRAIN / TEST and PU.LABELED_DATASETS like detectron2's builtin ones. Relative paths are read
    # from the working directory. E.g. [("my_train", "data/train.json", "data/train"), ("my_val", ...)]
    cfg.DATASETS.COCO_FORMAT = ()


def _add_model_ema_config(cfg):
    """The moving average of a detector's weights (pudet.engine.ema.WeightEMA, as d2go names its keys)."""
    cfg.MODEL_EMA = CN()
    # train_net.py's detectors (teachers and students) keep an exponential moving average of their weights, which
    # becomes the final model (its evaluation, model_final.pth, the exported student)
    cfg.MODEL_EMA.ENABLED = False
    # the average's decay per iteration: its time constant is 1 / (1 - DECAY) iterations
    cfg.MODEL_EMA.DECAY = 0.99


def get_pudet_cfg(config_file: str = "", opts=()) -> CN:
    """detectron2's default config with pudet's keys (:func:`add_pudet_config`), ``config_file`` merged when
    given, then ``opts`` (``KEY VALUE`` pairs, as on a tool's command line). Not frozen; registers nothing."""
    cfg = get_cfg()
    add_pudet_config(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return cfg


def pseudo_score_thresh(cfg) -> float:
    """tau, the score threshold of pseudo-boxes: ``DATASETS.PSEUDO_SCORE_THRESH``, or the value of its old
    name ``MODEL.PUDET.PSEUDO_SCORE_THRESH`` where a config still sets it (with a deprecation warning)."""
    old = cfg.MODEL.PUDET.PSEUDO_SCORE_THRESH
    if old is None:
        return cfg.DATASETS.PSEUDO_SCORE_THRESH
    log_first_n(logging.WARNING, "MODEL.PUDET.PSEUDO_SCORE_THRESH is deprecated: it was renamed to "
                "DATASETS.PSEUDO_SCORE_THRESH (a data-loading setting); please update your config", n=1)
    return float(old)


DATASET_KEYS = ("DATASETS.TRAIN", "DATASETS.TEST", "PU.LABELED_DATASETS", "PU.UNLABELED_DATASETS")
# the keys that take one of a few names, and those names
CHOICES = {"PU.HEAD": ("image", "region"), "PU.PRIOR_ESTIMATOR": ("bbe", "elkan-noto"),
           "PU.REGION.FEATURES": ("logprobs", "box+logprobs")}


def check_choices(cfg, config_file: str = "") -> None:
    """Raises ValueError naming the key, its value, the names it takes and ``config_file`` where a key of
    :data:`CHOICES` holds another value."""
    where = f" (config {config_file})" if config_file else ""
    for key, names in CHOICES.items():
        value = cfg
        for part in key.split("."):
            value = value[part]
        if value not in names:
            raise ValueError(f"{key} must be one of {list(names)}, got '{value}'{where}")


def check_config(cfg, config_file: str = "", dataset_keys=DATASET_KEYS) -> None:
    """Raises ValueError naming the key, its value and ``config_file`` for values that would otherwise be taken
    silently or fail only after training: ``PU.PRIOR`` other than -1 or a fraction in (0, 1), ``MODEL_EMA.DECAY``
    outside [0, 1), a key of :data:`CHOICES` holding another name (:func:`check_choices`), and a dataset name under
    one of ``dataset_keys`` that is not registered. Run it after the datasets are registered
    (:func:`pudet.data.register_datasets`, and the PU splits where ``DATASETS.TEST`` names them)."""
    import difflib

    from detectron2.data import DatasetCatalog

    where = f" (config {config_file})" if config_file else ""
    prior = cfg.PU.PRIOR
    if prior != -1 and not 0 < prior < 1:
        raise ValueError(f"PU.PRIOR = {prior}{where}: give the class prior as a fraction in (0, 1), or -1 to "
                         "estimate it")
    if not 0 <= cfg.MODEL_EMA.DECAY < 1:
        raise ValueError(f"MODEL_EMA.DECAY = {cfg.MODEL_EMA.DECAY}{where}: give a decay in [0, 1)")
    check_choices(cfg, config_file)
    registered = DatasetCatalog.list()
    for key in dataset_keys:
        node, name = key.split(".")
        for dataset in cfg[node][name]:
            if dataset not in registered:
                close = difflib.get_close_matches(dataset, registered, n=3)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                raise ValueError(f"{key} names '{dataset}'{where}, which is not a registered dataset{hint}")
