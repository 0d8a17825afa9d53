"""Multi-process training: `torchrun --nproc_per_node 2 -m training.cli fit ...` with two CPU
processes (gloo) on loopback; only rank 0 writes files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app.model.modelfile import load_model_file
from tests.helpers.tinydata import demo_dataset


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(tmp_path: Path) -> None:
    manifest = demo_dataset(tmp_path / "data", n=24, size=64)
    out = tmp_path / "out"
    port = _free_port()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "training.cli", "fit",
        "--data", str(manifest), "--out", str(out),
        "--epochs", "2", "--image-size", "64", "--no-pretrained", "--batch-size", "4",
        "--device", "cpu", "--quiet",
        "--set", "threads=1", "--set", "evaluation.bootstrap=200",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    history = metrics["history"]
    assert len(history) == 2
    # each epoch saw both ranks' batches: 2 ranks x steps x batch 4
    splits = metrics["data"]["splits"]
    per_rank = -(-splits["train"]["images"] // 2)
    assert history[0]["images"] == 2 * (per_rank // 4) * 4
    loaded = load_model_file(out / "model.safetensors")
    assert loaded.manifest.labels == ("nodule", "effusion", "cardiomegaly")
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_two_cpu_processes_train_one_segmentation_model(tmp_path: Path) -> None:
    from tests.training.test_segmentation_fit import write_discs

    manifest = write_discs(tmp_path / "data", 24)
    out = tmp_path / "out"
    port = _free_port()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "training.cli", "fit", "--task", "segmentation",
        "--data", str(manifest), "--out", str(out),
        "--epochs", "2", "--image-size", "32", "--batch-size", "4",
        "--device", "cpu", "--quiet", "--set", "threads=1", "--set", "evaluation.bootstrap=0",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert len(metrics["history"]) == 2
    loaded = load_model_file(out / "model.safetensors")
    assert loaded.manifest.task == "segmentation"
    assert not list(out.rglob("*.tmp"))
