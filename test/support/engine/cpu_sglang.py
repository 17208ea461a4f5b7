"""Test-only bootstrap for importing upstream sglang on a CPU-only machine.

Never used by the product. What it does, and why:
* torchvision (and, for the 0.5.2x bases, ``sgl_kernel``) cannot load on CPU: the stand-ins of
  standins.py take their place (``sgl_kernel=True``);
* ``torch.cuda.get_device_capability`` (and sglang's wrapper of it) has no answer on CPU: both
  report a gfx9 value (9, 5) = MI355X;
* ``SGLANG_USE_CPU_ENGINE=1`` (sglang's own switch) for the rope path;
"""

from __future__ import annotations

import os

import standins


def install(capability: tuple[int, int] = (9, 5), sgl_kernel: bool = False) -> None:
    os.environ.setdefault("SGLANG_USE_CPU_ENGINE", "1")
    standins.install(sgl_kernel=sgl_kernel)
    import torch

    torch.cuda.get_device_capability = lambda *args, **kwargs: capability
    # sglang's own wrapper answers (None, None) without a GPU; modules bind it by name on import,
    # so patch it before anything else imports it.
    import sglang.srt.utils
    import sglang.srt.utils.common

    for module in (sglang.srt.utils, sglang.srt.utils.common):
        module.get_device_capability = lambda device_id=0: capability
