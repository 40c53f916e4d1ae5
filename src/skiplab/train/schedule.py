"""Learning-rate schedules as a factor of the peak lr, a pure function of the step.

* ``constant``, ``multistep`` (He 2015 §4.2: ÷10 at 32k and 48k iterations),
  ``cosine`` (Loshchilov & Hutter 2017, SGDR without restarts) and ``onecycle``
  (Smith & Topin 2019, linear up then linear down, as airbench);
* an optional warm-up in front of any of them: linear (Goyal et al. 2017 §2.2) or
  constant (He et al. 2016 §4.1: "0.01 ... the beginning 400 iterations");
* He 2015 §4.2's ResNet-110 warm-up: "we use 0.01 to warm up the training until the
  training error is below 80% (about 400 iterations), and then go back to 0.1". It is the
  only part with state (whether the error has dropped yet), kept in :meth:`state_dict`.
"""

from __future__ import annotations

import bisect
import math

from .config import TrainConfig


class LRSchedule:
    """``schedule(step)`` -> lr for the optimiser step ``step`` (0-based).

    Args:
        config: the run's configuration (lr, schedule, milestones, warm-up fields).
        steps_per_epoch: optimiser steps per epoch (converts epochs to steps).
        total_steps: length of the run in steps.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int, total_steps: int) -> None:
        self.kind = config.schedule
        self.peak = config.lr
        self.total = max(1, total_steps)
        self.warmup = config.warmup_steps or round(config.warmup_epochs * steps_per_epoch)
        self.start_factor = config.warmup_start_factor
        self.constant_warmup = config.warmup_mode == "constant"
        self.min_factor = config.min_lr_factor
        self.gamma = config.gamma
        unit = steps_per_epoch if config.milestone_unit == "epoch" else 1
        self.milestones = [m * unit for m in config.milestones]
        self.error_lr = config.error_warmup_lr
        self.error_until = config.error_warmup_until
        self.error_warmup_done = self.error_lr == 0
        self.smoothed_error = 1.0

    def factor(self, step: int) -> float:
        """The multiplier of the peak lr at ``step``, ignoring the error-gated warm-up."""
        if step < self.warmup:
            if self.constant_warmup:
                return self.start_factor
            return self.start_factor + (1 - self.start_factor) * step / self.warmup
        if self.kind == "onecycle":  # after the rise (the warm-up), linear down to min_factor
            t = (step - self.warmup) / max(1, self.total - self.warmup)
            return 1 + (self.min_factor - 1) * min(1.0, t)
        if self.kind == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        if self.kind == "cosine":
            t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    def __call__(self, step: int) -> float:
        if not self.error_warmup_done:
            return self.error_lr
        return self.peak * self.factor(step)

    def observe_train_error(self, batch_error: float) -> None:
        """Feed each step's training error on its batch; He 2015's warm-up ends once their
        exponential average (over about 20 steps) is below ``error_warmup_until``."""
        self.smoothed_error += 0.05 * (batch_error - self.smoothed_error)
        if not self.error_warmup_done and self.smoothed_error < self.error_until:
            self.error_warmup_done = True

    def state_dict(self) -> dict:
        return {"error_warmup_done": self.error_warmup_done, "smoothed_error": self.smoothed_error}

    def load_state_dict(self, state: dict) -> None:
        self.error_warmup_done = bool(state["error_warmup_done"])
        self.smoothed_error = float(state["smoothed_error"])
