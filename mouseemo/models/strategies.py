"""Lightning strategy shared by every mouseemo model under multi-process training."""

from __future__ import annotations

import logging

from pytorch_lightning.strategies import DDPStrategy

log = logging.getLogger(__name__)


class MouseemoDDPStrategy(DDPStrategy):
    """DDP that leaves a module without trainable parameters unwrapped.

    The HOG models "fit" in one gradient-free pass and share their features across processes with
    ``all_gather_object``; ``DistributedDataParallel`` refuses such a module outright. Everything
    else (process launch, process group, distributed samplers, metric sync) is Lightning's DDP.
    Arguments are :class:`pytorch_lightning.strategies.DDPStrategy`'s.
    """

    def configure_ddp(self) -> None:
        if any(p.requires_grad for p in self.model.parameters()):
            super().configure_ddp()
        else:
            log.debug("%s has no trainable parameters: not wrapped in DDP", type(self.model).__name__)
