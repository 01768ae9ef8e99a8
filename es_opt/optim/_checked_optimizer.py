"""The shell RangerLite, Ligi and ClipUp share: checked param groups and older state dicts."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ._dynamo_free import DynamoFreeOptimizer

__all__ = ["CheckedOptimizer"]


class CheckedOptimizer(DynamoFreeOptimizer):
    """Every param group's hyperparameters are checked when the group is added (a bad group is
    not kept); loading a state dict fills the options an older state dict lacks (and renames the
    ones listed in ``renamed_options``) and turns tensor step counts into ints (no device sync per
    step)."""

    option_defaults: ClassVar[dict[str, Any]] = {}
    # old group key -> current group key, for state dicts and group dicts written before a rename
    renamed_options: ClassVar[dict[str, str]] = {}

    @staticmethod
    def check_group(group: dict[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def rename_options(cls, group: dict[str, Any]) -> None:
        """Move values stored under an old option name to the current one (in place).

        Raises:
            ValueError: Both names are given, with different values.
        """
        for old, new in cls.renamed_options.items():
            if old not in group:
                continue
            value = group.pop(old)
            if new in group and group[new] != value:
                raise ValueError(
                    f"Invalid {old}: {value!r}; it is the old name of {new}, which is "
                    f"{group[new]!r}: give one of the two"
                )
            group[new] = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (see ``torch.optim.Optimizer``); its hyperparameters are checked."""
        if isinstance(param_group, dict):
            self.rename_options(param_group)
        super().add_param_group(param_group)
        try:
            self.check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.rename_options(self.defaults)
        for key, value in self.option_defaults.items():
            self.defaults.setdefault(key, value)
        for group in self.param_groups:
            self.rename_options(group)
            for key in self.option_defaults:
                group.setdefault(key, self.defaults[key])
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and torch.is_tensor(p_state.get("step")):
                    p_state["step"] = int(p_state["step"])
