"""A torch trainer's checkpoint state: the RNG and the optimizers' slots, by index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def trainer_state(optimizers: Mapping[str, torch.optim.Optimizer],
                  device: torch.device) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The RNG and every optimizer's state: tensors, and JSON-ready values."""
    tensors: dict[str, np.ndarray] = {"rng.torch": torch.get_rng_state().numpy()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device).numpy()
    values: dict[str, Any] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars = {}
        for idx, slots in sd["state"].items():
            for key, value in slots.items():
                if torch.is_tensor(value):
                    tensors[f"{name}.{idx}.{key}"] = value.detach().cpu().numpy()
                else:
                    scalars[f"{idx}.{key}"] = value
        values[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, values

def load_trainer_state(optimizers: Mapping[str, torch.optim.Optimizer], device: torch.device,
                       tensors: Mapping[str, np.ndarray], values: Mapping[str, Any]) -> None:
    """Restore what ``trainer_state`` returned."""
    torch.set_rng_state(torch.from_numpy(np.array(tensors["rng.torch"])))
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(torch.from_numpy(np.array(tensors["rng.cuda"])),
                                 device)
    for name, opt in optimizers.items():
        saved = values[name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{name}."
        for key, array in tensors.items():
            if key.startswith(prefix):
                idx, slot = key[len(prefix):].split(".", 1)
                state.setdefault(int(idx), {})[slot] = torch.from_numpy(np.array(array))
        for key, value in saved["scalars"].items():
            idx, slot = key.split(".", 1)
            state.setdefault(int(idx), {})[slot] = value
        opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
