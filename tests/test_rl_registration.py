"""A gymnasium id registered only in the main process (as a user's ``main()`` does) works in the
worker processes: EpisodeReturn ships the registration (the EnvSpec) with itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from es_opt import ESOptimizer, EvaluationError
from es_opt.rl import EpisodeReturn, EpisodeSamples
from es_opt.rl.envs import make_env, registered_spec
from tests.rl_envs_fixture import Corridor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def register():
    """Registers ids in this process only (the workers never import this test module)."""
    ids = []

    def register(env_id, entry_point):
        gym.register(id=env_id, entry_point=entry_point, max_episode_steps=20)
        ids.append(env_id)

    yield register
    for env_id in ids:
        gym.registry.pop(env_id, None)


def train(objective, **backend):
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    with ESOptimizer(net, objective_fn=objective, n_samples=4, seed=1, **backend) as es:
        fitness = [
            es.gradient_step(EpisodeSamples.for_optimizer(es)).fitness_mean for _ in range(2)
        ]
    return fitness, [p.detach().clone() for p in net.parameters()]


def test_an_env_registered_only_in_the_main_process_trains_in_pool_workers(register):
    register("EsOptCorridor-v0", "tests.rl_envs_fixture:Corridor")
    serial_fitness, serial_params = train(EpisodeReturn("EsOptCorridor-v0"))
    fitness, params = train(EpisodeReturn("EsOptCorridor-v0"), backend="multiprocess", n_workers=2)
    assert fitness == serial_fitness
    for a, b in zip(params, serial_params, strict=True):
        assert torch.equal(a, b)

    # Without the shipped registration the workers do not know the id: the test can fail.
    blind = EpisodeReturn("EsOptCorridor-v0")
    blind._spec = None
    with pytest.raises(EvaluationError, match="unknown environment id 'EsOptCorridor-v0'"):
        train(blind, backend="multiprocess", n_workers=2)


def test_an_entry_point_the_workers_cannot_import_says_it_is_registered_only_here(register):
    module = types.ModuleType("es_opt_envs_of_this_process_only")
    module.Corridor = Corridor
    sys.modules[module.__name__] = module
    try:
        register("EsOptHereOnly-v0", f"{module.__name__}:Corridor")
        objective = EpisodeReturn("EsOptHereOnly-v0")  # builds here
        with pytest.raises(
            EvaluationError,
            match=r"(?s)environment id 'EsOptHereOnly-v0' is registered only in the main process"
            r".*Register it at import time of a module the workers can import",
        ):
            train(objective, backend="multiprocess", n_workers=2)
    finally:
        del sys.modules[module.__name__]


def test_make_env_builds_from_the_spec_where_the_id_is_not_registered(register):
    register("EsOptCorridorSpec-v0", "tests.rl_envs_fixture:Corridor")
    spec = registered_spec("EsOptCorridorSpec-v0")
    gym.registry.pop("EsOptCorridorSpec-v0")  # as in a worker process
    with pytest.raises(ValueError, match="unknown environment id 'EsOptCorridorSpec-v0'"):
        make_env("EsOptCorridorSpec-v0")
    env = make_env("EsOptCorridorSpec-v0", spec=spec, max_episode_steps=3)
    assert isinstance(env.unwrapped, Corridor) and env.spec.max_episode_steps == 3
    assert registered_spec("NoSuchEnv-v0") is None


SCRIPT = textwrap.dedent(
    """
    import gymnasium as gym
    import numpy as np
    import torch

    from es_opt import ESOptimizer
    from es_opt.rl import EpisodeReturn, EpisodeSamples


    class Walk(gym.Env):  # defined in the script: the workers cannot import it
        def __init__(self):
            self.observation_space = gym.spaces.Box(0.0, 9.0, (1,), dtype=np.float32)
            self.action_space = gym.spaces.Discrete(2)
            self.x = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = int(self.np_random.integers(0, 3))
            return np.array([self.x], dtype=np.float32), {}

        def step(self, action):
            self.x += int(action)
            return np.array([self.x], dtype=np.float32), float(action), self.x >= 9, False, {}


    def main():
        gym.register(id="ScriptWalk-v0", entry_point="__main__:Walk", max_episode_steps=10)
        gym.register(id="ScriptWalkClass-v0", entry_point=Walk, max_episode_steps=10)
        objectives = {
            "string": EpisodeReturn("ScriptWalk-v0"),  # entry point "__main__:Walk"
            "class": EpisodeReturn("ScriptWalkClass-v0"),  # entry point Walk
            # no registration; the step limit keeps a policy that never moves from walking forever
            "factory": EpisodeReturn(lambda: Walk(), max_episode_steps=10),
        }
        for name, objective in objectives.items():
            torch.manual_seed(0)  # the policy's initial weights
            with ESOptimizer(
                torch.nn.Linear(1, 2), objective_fn=objective, n_samples=4, seed=0,
                backend="multiprocess", n_workers=2,
            ) as es:
                print(name, es.gradient_step(EpisodeSamples.for_optimizer(es)).n_evals)


    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.slow
def test_an_env_class_of_the_main_script_registered_in_main_works_in_workers(tmp_path):
    script = tmp_path / "train_walk.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["string", "4", "class", "4", "factory", "4"]
