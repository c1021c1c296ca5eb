"""tools/submit.py without a cluster: the sbatch script it would submit, each node's command (launch flags from
SLURM's environment, --resume for training), and a job run through submitit's debug executor."""
import json
import os
import sys

import pytest
import submitit

from .helpers import REPO, load_script


def _tool():
    return load_script("tools", "submit.py")


def _slurm_env(monkeypatch, node):
    """The environment SLURM gives the task on node ``node`` of job 4242 on two nodes, one task each."""
    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2",
                       "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": str(node), "SLURM_PROCID": str(node),
                       "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "gpu[017-018]"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def test_each_node_gets_its_rank_and_the_first_hosts_address(monkeypatch):
    submit = _tool()
    train = os.path.join(REPO, "tools", "train_net.py")
    job = submit.ToolJob([train, "--config-file", "c.yaml", "SOLVER.MAX_ITER", "10"], gpus_per_node=8, python="py")
    commands = []
    for node in (0, 1):
        _slurm_env(monkeypatch, node)
        commands.append(job.command(submitit.JobEnvironment()))
    port = submit.dist_port("4242")
    assert 20000 <= port < 40000 and port != submit.dist_port("4243")
    for node, command in enumerate(commands):
        assert command == ["py", train, "--num-gpus", "8", "--num-machines", "2", "--machine-rank", str(node),
                           "--dist-url", f"tcp://gpu017:{port}", "--resume", "--config-file", "c.yaml",
                           "SOLVER.MAX_ITER", "10"]


def test_select_and_label_resume_by_chunks_and_training_by_checkpoint():
    submit = _tool()
    purify = os.path.join(REPO, "tools", "purify_net.py")
    kw = dict(python="py", gpus_per_node=4, num_nodes=1, node_rank=0, main_host="h", job_id="7")
    select = submit.node_command([purify, "select", "--topk", "5"], **kw)
    assert select[:3] == ["py", purify, "select"] and select[3:5] == ["--num-gpus", "4"]
    assert "--resume" not in select and select[-2:] == ["--topk", "5"]
    assert "--resume" in submit.node_command([purify, "train", "--config-file", "c.yaml"], **kw)
    assert submit.node_command([purify, "train", "--resume"], **kw).count("--resume") == 1


def test_sbatch_script_and_refused_flags(capsys):
    submit = _tool()
    submit.main(["--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu", "--account", "lab", "--dry-run",
                 "--", "train_net.py", "--config-file", "c.yaml"])
    script = capsys.readouterr().out
    for line in ("--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8", "--cpus-per-task=64", "--partition=gpu",
                 "--account=lab", "--requeue", "--signal=USR2@120", "--time=4320"):
        assert f"#SBATCH {line}\n" in script
    assert "--num-machines 2 --machine-rank 0 --dist-url tcp://HOST0:" in script
    with pytest.raises(SystemExit, match="--num-gpus"):
        submit.main(["--partition", "gpu", "--", "train_net.py", "--num-gpus", "2"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        submit.main(["--partition", "gpu", "train_net.py"])
    assert "give the tool and its arguments after '--' (got train_net.py)" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit:
        _tool().main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tools/submit.py [options] -- TOOL") and "--gpus-per-node" in out


def test_job_runs_through_submitit_and_requeues_as_itself(tmp_path, monkeypatch):
    submit = _tool()
    tool = tmp_path / "train_net.py"  # a stand-in that records its arguments
    tool.write_text("import json, os, sys\njson.dump(sys.argv[1:], open(os.environ['ARGV_OUT'], 'w'))\n")
    monkeypatch.setenv("ARGV_OUT", str(tmp_path / "argv.json"))
    job = submit.ToolJob([str(tool), "--config-file", "c.yaml"], gpus_per_node=1, python=sys.executable)
    executor = submitit.AutoExecutor(folder=str(tmp_path / "logs"), cluster="debug")
    assert executor.submit(job).result() == 0
    with open(tmp_path / "argv.json") as f:
        argv = json.load(f)
    assert argv[:6] == ["--num-gpus", "1", "--num-machines", "1", "--machine-rank", "0"]
    assert argv[6] == "--dist-url" and argv[7].startswith("tcp://")
    assert argv[8:] == ["--resume", "--config-file", "c.yaml"]
    # on preemption or timeout submitit calls checkpoint() and requeues what it returns: this same job
    requeued = job.checkpoint()
    assert requeued.function is job and requeued.args == () and requeued.kwargs == {}
