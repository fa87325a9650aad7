"""PyTorch peers of bench/elementwise.cpp: Tensor.copy_ of the same sizes and torch.add(out=)."""
import torch


def run(timer):
    out = []
    for rows, cols, dt, tag in ((16384, 4096, torch.bfloat16, "bf16"), (16384, 4096, torch.float32, "f32"),
                                (4096, 4096, torch.bfloat16, "bf16")):
        x = torch.randn(rows, cols, device="cuda", dtype=dt)
        y = torch.empty_like(x)
        out.append({"op": "copy", "shape": f"{rows}x{cols}", "dtype": tag, "ms": timer(lambda: y.copy_(x))})
        del x, y
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        a = torch.randn(16384, 4096, device="cuda", dtype=dt)
        b = torch.randn_like(a)
        c = torch.empty_like(a)
        out.append({"op": "add", "shape": "16384x4096", "dtype": tag, "ms": timer(lambda: torch.add(a, b, out=c))})
        del a, b, c
    return out
