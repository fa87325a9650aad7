"""PyTorch peers of bench/activations.cpp: F.silu, F.gelu (erf and tanh), silu(g) * u on two tensors and on
the halves of one [gate | up] tensor."""
import torch
import torch.nn.functional as F


def run(timer):
    rows, cols = 16384, 4096
    out = []
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        x = torch.randn(rows, cols, device="cuda", dtype=dt)
        u = torch.randn_like(x)
        gu = torch.randn(rows, 2 * cols, device="cuda", dtype=dt)
        shape = f"{rows}x{cols}"

        def add(op, fn):
            out.append({"op": op, "shape": shape, "dtype": tag, "ms": timer(fn)})

        add("silu", lambda: F.silu(x))
        add("gelu_erf", lambda: F.gelu(x))
        add("gelu_tanh", lambda: F.gelu(x, approximate="tanh"))
        add("swiglu", lambda: F.silu(x) * u)
        add("swiglu_fused", lambda: F.silu(gu[:, :cols]) * gu[:, cols:])
        del x, u, gu
        torch.cuda.empty_cache()
    return out
