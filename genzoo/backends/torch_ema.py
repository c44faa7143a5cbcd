"""The moving average of a torch model's weights, updated in place on its device."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from genzoo.backends.common import check_state_matches


class TorchAverage:
    """An average of every floating-point entry of ``module.state_dict()``, but those the
    module's ``ema_skip(name)`` names (estimates such as a power iteration's vectors,
    whose average is no estimate; sampling uses their trained values)."""

    def __init__(self, module: nn.Module):
        self.module = module
        current = module.state_dict()
        skip = getattr(module, "ema_skip", None) or (lambda name: False)
        self.names = [k for k, v in current.items() if v.is_floating_point() and not skip(k)]
        with torch.no_grad():
            self.shadow = [current[k].detach().clone() for k in self.names]

    def _current(self) -> list[torch.Tensor]:
        state = self.module.state_dict()  # detached views of the live tensors
        return [state[k] for k in self.names]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """``average += (1 - decay) * (weights - average)``, for every tensor at once."""
        current = self._current()
        if hasattr(torch, "_foreach_lerp_"):  # one fused call (what torch's own EMA uses)
            torch._foreach_lerp_(self.shadow, current, 1.0 - decay)
        else:  # pragma: no cover - older torch
            for average, value in zip(self.shadow, current):
                average.lerp_(value, 1.0 - decay)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        check_state_matches({k: tuple(v.shape) for k, v in zip(self.names, self.shadow)},
                            tensors, "the moving average of the weights")
        for name, average in zip(self.names, self.shadow):
            average.copy_(torch.from_numpy(np.array(tensors[name])))
