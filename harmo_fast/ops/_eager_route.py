"""When an op may skip its torch.library custom op and run its kernels through a plain
torch.autograd.Function.

The custom op is what torch.compile, torch.export, functorch transforms and dispatch modes (fake
tensors, tracing) see; its dispatch costs tens of microseconds per call in eager mode, which is
most of the time of a small loss. Ops whose eager calls are that short (grpo_loss,
selective_log_softmax) take the direct route whenever none of those machineries is active; both
routes run the same launchers, so their results are bit-identical (python_tests check it).
"""

from __future__ import annotations

import torch


def direct_route() -> bool:
    """True in plain eager mode: not compiling or exporting, no functorch transform, no dispatch mode."""
    return (
        not torch.compiler.is_compiling()
        and torch._C._len_torch_dispatch_stack() == 0
        and torch._C._functorch.peek_interpreter_stack() is None
    )
