"""A script without ``if __name__ == "__main__":``, written as pytorch-optimize's users write it
(a Samples dataclass and an objective class defined in the script), trains on the process pool
and on Ray: the workers never run the script again, and what it defines travels by value, with
its base classes (also those of a Generic such as torch's Dataset)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
import torch
from dataclasses import dataclass

from es_opt import ESOptimizer, Objective, Samples

print("script body runs", flush=True)


@dataclass
class XY(Samples):
    inputs: torch.Tensor
    targets: torch.Tensor


class Rows(torch.utils.data.Dataset):  # a Generic: must reach the workers with its real base
    def __len__(self):
        return 1


class Fit(Objective):
    def __init__(self):
        self.data = Rows()

    def __call__(self, model, samples):
        if not isinstance(self.data, torch.utils.data.Dataset):
            raise TypeError("Rows arrived without its base class")
        return -float((model(samples.inputs) - samples.targets).square().mean())

    def collect_stats(self):
        return XY(torch.zeros(1), torch.ones(1))  # a __main__ class on the way back too


generator = torch.Generator().manual_seed(0)
samples = XY(torch.randn(8, 3, generator=generator), torch.randn(8, 1, generator=generator))
net = torch.nn.Linear(3, 1)
es = ESOptimizer(net, objective_fn=Fit(), n_samples=8, seed=0, n_workers=2, {backend})
for _ in range(2):
    result = es.gradient_step(samples)
pids = {pids}
es.close()
print("trained", result.fitness_mean, len(set(pids)), flush=True)
"""


def run_script(tmp_path, backend: str, pids: str) -> subprocess.CompletedProcess:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT).format(backend=backend, pids=pids))
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )


def assert_trained_once(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    # the body ran in this process only: no worker ran the script again
    assert done.stdout.count("script body runs") == 1, done.stdout
    assert done.stdout.count("trained") == 1 and done.stdout.rstrip().endswith(" 2"), done.stdout
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)  # the script may take up to 600 s on a busy machine
def test_unguarded_script_trains_on_the_process_pool(tmp_path):
    done = run_script(tmp_path, 'backend="multiprocess"', "es.evaluator.worker_pids()")
    assert_trained_once(done)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_unguarded_script_trains_on_ray_quietly(tmp_path):
    pytest.importorskip("ray")
    done = run_script(
        tmp_path, 'backend="ray"', "[info['pid'] for info in es.evaluator.worker_info()]"
    )
    assert_trained_once(done)
    # Ray's notice about token authentication is not printed at every start
    assert "Token authentication" not in done.stderr + done.stdout, done.stderr
