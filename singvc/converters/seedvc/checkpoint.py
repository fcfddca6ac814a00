"""Loading a published checkpoint into one of singvc's Seed-VC networks, checked key by key."""
from __future__ import annotations

from torch import nn

from ...errors import ModelLoadError


def load_matching(module: nn.Module, state: dict, unused: tuple[str, ...], what: str) -> None:
    """Load ``state`` into ``module``: every parameter must be there with its shape; entries that
    start with one of ``unused`` are ignored; anything else is an error naming the keys."""
    own = module.state_dict()
    wanted = {k: v for k, v in state.items() if not k.startswith(unused)}
    missing = sorted(set(own) - set(wanted))
    extra = sorted(set(wanted) - set(own))
    shapes = [f"{k} {tuple(wanted[k].shape)} != {tuple(own[k].shape)}"
              for k in own if k in wanted and tuple(wanted[k].shape) != tuple(own[k].shape)]
    if missing or extra or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", extra), ("shape", shapes)):
            if keys:
                parts.append(f"{label} {len(keys)}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise ModelLoadError(f"{what}: checkpoint does not fit the model ({'; '.join(parts)})")
    module.load_state_dict(wanted, strict=True)
