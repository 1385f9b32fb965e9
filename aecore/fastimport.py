"""Keep `torch._dynamo` (seconds of imports: the CLI bench, docs/BENCHMARKS.md section 8,
measures it) out of processes that never compile.

torch.optim's optimizers import torch._dynamo the first time one is used, although in
eager mode it changes nothing: `Optimizer.add_param_group` (called by the constructor),
`zero_grad`, `state_dict` and `load_state_dict` are wrapped by `torch._disable_dynamo`,
which imports torch._dynamo on the first call to wrap the method in `torch._dynamo.disable`;
each optimizer's `step` is wrapped by `_use_grad_for_differentiable`, which imports it on
every call for two `graph_break()`s. Both only matter while torch.compile traces a frame,
and nothing can be traced before torch._dynamo has been imported.

`eager_optimizers()` lets those wrappers skip the import while torch._dynamo is not loaded
and do exactly what torch does once it is (torch.compile, torch.export, another library),
so results are identical either way. AECORE_EAGER_OPTIMIZERS=0 turns it off (tests compare
the two). It recognises the wrappers by their code objects; if
torch's internals differ, it changes nothing and training merely imports torch._dynamo."""
from __future__ import annotations

import functools
import os
import sys

_DONE: list[bool] = []   # [patched?] once the first call has decided


def _dynamo_active() -> bool:
    return "torch._dynamo" in sys.modules


def _closure(fn) -> dict:
    code = getattr(fn, "__code__", None)
    if code is None or not fn.__closure__:
        return {}
    return dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__)))


def _lazy_disable(fn, recursive: bool):
    """What `torch._disable_dynamo`'s wrapper calls (its `fn.__dynamo_disable` cache):
    `fn` itself until torch._dynamo is loaded, then, for good, torch._dynamo.disable(fn)."""
    def call(*args, **kwargs):
        if not _dynamo_active():
            return fn(*args, **kwargs)
        import torch._dynamo
        real = torch._dynamo.disable(fn, recursive, wrapping=False)
        setattr(fn, "__dynamo_disable", real)   # torch's own cache from now on
        return real(*args, **kwargs)
    return call


def _eager_step(use_grad, func):
    """`_use_grad_for_differentiable(func)` without its torch._dynamo import and graph
    breaks (no-ops in eager mode) while torch._dynamo is not loaded."""
    import torch

    @functools.wraps(use_grad)
    def step(*args, **kwargs):
        if _dynamo_active():
            return use_grad(*args, **kwargs)
        prev = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(args[0].defaults["differentiable"])
            return func(*args, **kwargs)
        finally:
            torch.set_grad_enabled(prev)
    step.__aecore_eager__ = True
    return step


def eager_optimizers() -> bool:
    """Patch torch.optim (once, idempotent) so that eager training does not import
    torch._dynamo. True when the patch is in place, False when torch's internals are not
    the ones this knows (nothing is changed then) or torch._dynamo is already loaded."""
    if _DONE:
        return _DONE[0]
    if os.environ.get("AECORE_EAGER_OPTIMIZERS", "1") == "0":
        _DONE.append(False)
        return False
    try:
        ok = _patch()
    except Exception:   # torch's internals moved: keep its own behaviour
        ok = False
    _DONE.append(ok)
    return ok


def _patch() -> bool:
    import torch
    import torch.optim
    from torch._compile import _disable_dynamo
    from torch.optim import optimizer as optimizer_module

    if _dynamo_active():
        return False
    disable_code = _disable_dynamo(lambda: None).__code__
    use_grad_code = optimizer_module._use_grad_for_differentiable(lambda: None).__code__
    classes, todo = [], [torch.optim.Optimizer]
    while todo:                       # Optimizer and every subclass defined so far
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    disables, steps = [], []
    for cls in classes:
        for name, attr in vars(cls).items():
            if getattr(attr, "__code__", None) is disable_code:
                cells = _closure(attr)
                if set(cells) != {"fn", "recursive"}:
                    return False
                disables.append((cells["fn"], cells["recursive"]))
            elif name == "step" and not getattr(attr, "hooked", False) \
                    and getattr(attr, "__code__", None) is use_grad_code:
                cells = _closure(attr)
                if set(cells) != {"func"}:
                    return False
                steps.append((cls, attr, cells["func"]))
    if not disables:
        return False
    # everything recognised: now change it
    for fn, recursive in disables:
        if getattr(fn, "__dynamo_disable", None) is None:
            setattr(fn, "__dynamo_disable", _lazy_disable(fn, recursive))
    for cls, use_grad, func in steps:
        cls.step = _eager_step(use_grad, func)
    return True
