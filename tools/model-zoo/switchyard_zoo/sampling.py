"""Reference samplers (the TypeScript `sampler` library mirrors these exactly).

Schedule: sigmas = linspace(1, 0, steps+1), shifted s' = shift*s / (1 + (shift-1)*s).
euler: x += (t_next - t) * v(x, t)                                   1 call / step
heun:  x' = x + dt*v1; v2 = v(x', t_next); x += dt*(v1+v2)/2       2 calls / step
pc:    FlowTurbo-style pseudo corrector: like heun, but v2 is reused as the next
       step's v1, so every step after the first costs one call (steps+1 calls).
CFG:   v = v_u + g*(v_c - v_u), evaluated as one doubled batch; g == 1 means no doubling.
"""
import torch

from .model import NULL_LABEL


def schedule(steps: int, shift: float = 1.0) -> list:
    out = []
    for i in range(steps + 1):
        s = 1.0 - i / steps
        out.append(shift * s / (1.0 + (shift - 1.0) * s))
    return out


def velocity(model, x, t: float, y, guidance: float, record=None):
    b = x.shape[0]
    tt = torch.full((b,), t, dtype=torch.float32)
    if guidance == 1.0:
        return model(x, tt, y, record)[0]
    v = model(torch.cat([x, x]), torch.cat([tt, tt]),
              torch.cat([y, torch.full_like(y, NULL_LABEL)]), record)[0]
    vc, vu = v[:b], v[b:]
    return vu + guidance * (vc - vu)


@torch.no_grad()
def sample(model, noise, y, steps=20, sampler="euler", guidance=1.0, shift=1.0, on_call=None):
    """Integrates from t=1 (noise) to t=0. on_call(step, t) is called before each model call."""
    ts = schedule(steps, shift)
    x = noise.clone()
    v_prev = None
    calls = 0

    def f(xx, t, step):
        nonlocal calls
        calls += 1
        rec = on_call(step, t) if on_call else None
        return velocity(model, xx, t, y, guidance, rec)

    for i in range(steps):
        t, tn = ts[i], ts[i + 1]
        dt = tn - t
        if sampler == "euler":
            x = x + dt * f(x, t, i)
        elif sampler == "heun":
            v1 = f(x, t, i)
            v2 = f(x + dt * v1, tn, i)
            x = x + dt * 0.5 * (v1 + v2)
        elif sampler == "pc":
            v1 = v_prev if v_prev is not None else f(x, t, i)
            v2 = f(x + dt * v1, tn, i)
            x = x + dt * 0.5 * (v1 + v2)
            v_prev = v2
        else:
            raise ValueError(f"sampler {sampler!r} must be one of euler, heun, pc")
    return x, calls
