"""The docs (README.md, INSTALL.md, GETTING_STARTED.md, BENCHMARKS.md, projects/*/README.md) against the code: every
config key they name is a key of detectron2's config with pudet's; every flag of a command they show is an option
of that tool (of its sub-command), every other flag they name an option of some tool; every repository path they
give exists; every output path is produced: under a config's OUTPUT_DIR, a tool's default output folder or a
folder a documented command writes to, and named as the tools name their files."""
import argparse
import glob
import os
import re
import sys
from unittest import mock

import pytest
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import default_argument_parser

from pudet.config import add_pudet_config, get_pudet_cfg
from wild_demo import settings as demo_settings

from .helpers import REPO, load_script

DOCS = ["README.md", "INSTALL.md", "GETTING_STARTED.md", "BENCHMARKS.md",
        *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "projects", "*", "README.md")))]
# flags of other programs that the docs name
OTHER_PROGRAMS = {"--system-site-packages": "python -m venv", "--help": "every tool (argparse)",
                  "--logdir": "tensorboard"}
# files the reader writes, as the docs show them (GETTING_STARTED's "Your own data")
READER_WRITES = ("configs/my_teacher.yaml", "configs/my_pu.yaml", "configs/my_student.yaml")


def _read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


@pytest.fixture(scope="module")
def docs():
    return {path: _read(path) for path in DOCS}


def _commands(text):
    """The shell commands of a doc's code blocks, continuation lines joined, comments dropped."""
    commands = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S):
        if language not in ("", "bash", "sh"):
            continue
        for command in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"(^|\s)#.*$", "", command).strip()
            if command:
                commands.append(command)
    return commands


def _prose(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


# config keys ---------------------------------------------------------------------------------------------------

def _has_key(cfg, key):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return False
        node = node[part]
    return True


def test_every_config_key_in_the_docs_exists(docs):
    cfg = add_pudet_config(get_cfg())
    nodes = "|".join(sorted(k for k in cfg if isinstance(cfg[k], CfgNode)))
    pattern = re.compile(rf"(?<![\w.])((?:{nodes})(?:\.[A-Z][A-Z0-9_]*)+)(?![\w])")
    found = {(doc, key) for doc, text in docs.items() for key in pattern.findall(text)}
    assert len(found) > 60
    assert sorted((doc, key) for doc, key in found if not _has_key(cfg, key)) == []


# flags ---------------------------------------------------------------------------------------------------------

class _Parsed(Exception):
    pass


def _parser_of(call):
    """The ArgumentParser that ``call`` parses its arguments with (stopped before it parses)."""
    got = []

    def grab(self, *args, **kwargs):
        got.append(self)
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", grab), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", grab):
        with pytest.raises(_Parsed):
            call()
    return got[0]


def _options(parser):
    """{sub-command or "": option strings} of a parser and its sub-commands, those left out of the help (refused:
    purify_net.py select's --resume) left out."""
    def offered(p):
        return {s for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings}

    out = {"": offered(parser)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.update({name: offered(sub) for name, sub in action.choices.items()})
    return out


@pytest.fixture(scope="module")
def tool_options():
    """{script path: {sub-command or "": option strings}} of every tool and project script the docs run."""
    sys.path.insert(0, os.path.join(REPO, "tools"))  # tools/benchmark.py imports tools/benchmark_processes.py
    try:
        calls = {
            "tools/train_net.py": lambda: default_argument_parser().parse_args([]),
            "tools/purify_net.py": lambda: load_script("tools", "purify_net.py").parse_args([]),
            "tools/evaluate_pool_truth.py": lambda: load_script("tools", "evaluate_pool_truth.py").parse_args([]),
            "tools/export_student.py": lambda: load_script("tools", "export_student.py").main([]),
            "tools/visualize_pseudo_labels.py":
                lambda: load_script("tools", "visualize_pseudo_labels.py").parse_args([]),
            "tools/convert_torchvision_resnet.py":
                lambda: load_script("tools", "convert_torchvision_resnet.py").main([]),
            "tools/submit.py": lambda: load_script("tools", "submit.py").parse_args([]),
            "tools/benchmark.py": lambda: load_script("tools", "benchmark.py").main([]),
            "tools/benchmark_coco_eval.py": lambda: load_script("tools", "benchmark_coco_eval.py").parse_args([]),
            "tools/benchmark_prior.py": lambda: load_script("tools", "benchmark_prior.py").main([]),
            "projects/WildDigits/run_demo.py": lambda: load_script("projects", "WildDigits", "run_demo.py").main([]),
            "projects/WildDigits/summarize_runs.py":
                lambda: load_script("projects", "WildDigits", "summarize_runs.py").main([]),
            "projects/COCO-ImageNet/measure_costs.py":
                lambda: load_script("projects", "COCO-ImageNet", "measure_costs.py").main([]),
        }
        options = {script: _options(_parser_of(call)) for script, call in calls.items()}
    finally:
        sys.path.remove(os.path.join(REPO, "tools"))
    # the COCO row scripts' sections, as projects/COCO-ImageNet/common.sh reads them
    sections = set(re.findall(r"^\s+(--[a-z]+)\) section=", _read("projects/COCO-ImageNet/common.sh"), flags=re.M))
    assert sections == {"--teacher", "--pu", "--label", "--student"}
    options["row script"] = {"": sections}
    options["tools/gpu_check.sh"] = {"": set()}
    return options


def _tool_runs(command):
    """(script, its arguments) of each pudet script a command runs; ``make demo DEMO_ARGS=...`` runs run_demo.py."""
    runs = []
    for part in command.split(" -- "):  # tools/submit.py OPTIONS -- TOOL ...
        words = re.findall(r"\"[^\"]*\"|'[^']*'|\S+", part)
        for i, word in enumerate(words):
            if re.fullmatch(r"(tools|projects)/[\w/.-]+\.(py|sh)", word):
                script = "row script" if re.search(r"/table\d/", word) else word
                runs.append((script, words[i + 1:]))
                break
        demo_args = re.search(r"DEMO_ARGS=(\"[^\"]*\"|\S+)", part)
        if demo_args:
            runs.append(("projects/WildDigits/run_demo.py", demo_args.group(1).strip('"').split()))
    return runs


def test_every_flag_of_a_documented_command_is_an_option_of_its_tool(docs, tool_options):
    checked, unknown = 0, []
    for doc, text in docs.items():
        for command in _commands(text):
            for script, args in _tool_runs(command):
                assert script in tool_options, f"{doc}: a command runs {script}, which this test does not know"
                options = tool_options[script]
                sub = args[0] if args and args[0] in options else ""
                for flag in (a.split("=")[0] for a in args if a.startswith("--")):
                    checked += 1
                    if flag not in options[sub] and flag not in OTHER_PROGRAMS:
                        unknown.append((doc, script, sub, flag))
    assert checked > 80
    assert unknown == []


def test_every_flag_named_in_prose_is_an_option_of_some_tool(docs, tool_options):
    known = set(OTHER_PROGRAMS) | {flag for tool in tool_options.values() for flags in tool.values() for flag in flags}
    named = {(doc, flag) for doc, text in docs.items()
             for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", _prose(text))}
    assert len(named) > 40
    assert sorted((doc, flag) for doc, flag in named if flag not in known) == []


# paths ---------------------------------------------------------------------------------------------------------

def _expand(path):
    """Glob patterns of a documented path: ``<name>`` is any name, ``{a,b}`` each of its options."""
    path = re.sub(r"<[^>]*>", "*", path)
    braces = re.search(r"\{([^}]*)\}", path)
    if not braces:
        return [path]
    return [p for option in braces.group(1).split(",")
            for p in _expand(path[:braces.start()] + option + path[braces.end():])]


def test_every_repository_path_in_the_docs_exists(docs):
    pattern = re.compile(r"(?<![\w/.-])((?:configs|tools|projects|pudet|tests)/[\w./*<>{},-]*[\w/*>}])")
    found = {(doc, p) for doc, text in docs.items() for p in pattern.findall(text)}
    assert len(found) > 50
    theirs = {(doc, p) for doc, text in docs.items() for p in re.findall(r"detectron2's (?:own )?`?([\w/.-]+)", text)}
    missing = [(doc, p) for doc, p in sorted(found - theirs) if p not in READER_WRITES
               and not all(glob.glob(os.path.join(REPO, pattern)) for pattern in _expand(p))]
    assert missing == []
    for path in READER_WRITES:  # each shown to the reader, who writes it
        assert f"# {path}" in docs["GETTING_STARTED.md"] or f"`{path}` bases on" in docs["GETTING_STARTED.md"]


# the files the tools write, each with a source that names it (checked below), and the folders below an OUTPUT_DIR
# they write into (purify_net.py's defaults for select and label)
PRODUCED_FILES = {
    "model_final.pth": "pudet/compat/trainer.py", "model_final_student.pth": "pudet/engine/trainers.py",
    "pseudo_labels.json": "tools/purify_net.py", "selected.json": "tools/purify_net.py",
    "report.md": "tools/gpu_check.sh", "results.md": "projects/WildDigits/wild_demo/report.py",
    "gallery.png": "tools/visualize_pseudo_labels.py", "logs": "projects/WildDigits/wild_demo/runner.py",
    "demo_seeds.md": "Makefile",  # as $(DEMO_OUT)_seeds.md
}


def _checkpoint_ok(folder, name, configs):
    """Whether a training into ``folder`` writes the periodic checkpoint ``name`` (model_<iteration>.pth)."""
    iteration = int(re.fullmatch(r"model_(\d{7})\.pth", name).group(1))
    cfg = configs[folder]
    period = cfg.SOLVER.CHECKPOINT_PERIOD
    return (iteration + 1) % period == 0 and iteration < cfg.SOLVER.MAX_ITER - 1


def test_every_output_path_in_the_docs_is_produced(docs):
    for name, source in PRODUCED_FILES.items():
        assert name.replace("demo_seeds", "_seeds") in _read(source), f"{source} does not write {name}"
    configs = {}
    for path in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True):
        cfg = get_pudet_cfg(path)
        configs.setdefault(cfg.OUTPUT_DIR, cfg)
    subfolders = set(load_script("tools", "purify_net.py").OUTPUT_SUBDIRS.values())
    # the folders commands write to: OUTPUT_DIR and output options in the docs' commands, and the tools' defaults
    written = set(configs)
    output_option = re.compile(r"(?:OUTPUT_DIR:?|--output-dir|--output|DEMO_OUT=|OUTPUT_ROOT=)\s*\"?([^\s\"`]+)")
    for text in docs.values():  # in commands, inline code and the yaml the docs show
        written |= set(output_option.findall(text))
    written |= {demo_settings.parse_args(table).output_dir for table in ([], ["--table", "3"])}
    written |= {demo_settings.parse_args(["--quick"]).output_dir,
                _parser_of(lambda: load_script("tools", "submit.py").parse_args([])).get_default("log_dir"),
                os.path.dirname(re.search(r"REPORT=\$\{1:-(\S+)\}", _read("tools/gpu_check.sh")).group(1))}
    written |= {re.search(r"OUTPUT_ROOT=\$\{OUTPUT_ROOT:-(\S+)\}", _read("projects/COCO-ImageNet/common.sh")).group(1)}
    demo_out = re.search(r"^DEMO_OUT \?= (\S+)", _read("Makefile"), flags=re.M).group(1)
    written |= {f"{demo_out}{table}_s{seed}" for seed in range(1, 5) for table in ("", "_table3")}
    pattern = re.compile(r"(?<![\w/.-])(output/[\w./-]*[\w/])")
    found = {(doc, p) for doc, text in docs.items() for p in pattern.findall(text)}
    assert len(found) > 30
    unproduced = []
    for doc, path in sorted(found):
        path = path.rstrip("/")
        if path in written or (
                os.path.basename(path) in subfolders and os.path.dirname(path) in written):
            continue
        folder, name = os.path.split(path)
        if os.path.basename(folder) in subfolders:
            folder = os.path.dirname(folder)
        made_here = folder in written and (name in PRODUCED_FILES or (
            name.startswith("model_0") and folder in configs and _checkpoint_ok(folder, name, configs)))
        if not made_here:
            unproduced.append((doc, path))
    assert unproduced == [], "\n".join(map(str, unproduced))
