"""PyTorch peers of bench/matmul.cpp: GEMM, GEMV (linear with M = 1), a prefill linear and embedding lookup.

The quantized GEMV cases (q8_0, q4_0, q4_k, q6_k) have no PyTorch peer and are reported by our side alone.
"""
import torch
import torch.nn.functional as F


def run(timer):
    dev = "cuda"
    rows = []
    torch.manual_seed(0)

    # GEMM 4096^3 bf16: op "matmul", shape M x N x K.
    n = 4096
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    c = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    rows.append({"op": "matmul", "shape": f"{n}x{n}x{n}", "dtype": "bf16",
                 "ms": timer(lambda: torch.matmul(a, b, out=c))})
    del a, b, c

    # GEMV: y[M, N] = x[M, K] @ W[N, K]^T, shape M x K x N.
    for m, k, nn in [(1, 4096, 11008), (1, 11008, 4096), (1, 4096, 4096), (8, 4096, 11008)]:
        for name, dt in [("bf16", torch.bfloat16), ("f16", torch.float16)]:
            if m > 1 and name != "bf16":
                continue
            x = torch.randn(m, k, device=dev, dtype=dt)
            w = torch.randn(nn, k, device=dev, dtype=dt)
            rows.append({"op": "linear", "shape": f"{m}x{k}x{nn}", "dtype": name,
                         "ms": timer(lambda: F.linear(x, w))})
            del x, w

    # Prefill linear 512 x 3584 -> 18944 in f16 (our row takes f32 x, rounded to f16 for the same GEMM).
    m, k, nn = 512, 3584, 18944
    x = torch.randn(m, k, device=dev, dtype=torch.float16)
    w = torch.randn(nn, k, device=dev, dtype=torch.float16)
    rows.append({"op": "linear", "shape": f"{m}x{k}x{nn}", "dtype": "f16", "ms": timer(lambda: F.linear(x, w))})
    del x, w

    # Embedding lookup: table [V, D], ids [T].
    v, d = 32000, 4096
    table = torch.randn(v, d, device=dev, dtype=torch.bfloat16)
    for t in (4096, 16384):
        ids = torch.randint(0, v, (t,), device=dev, dtype=torch.int32)
        rows.append({"op": "embedding", "shape": f"V{v}xD{d}xT{t}", "dtype": "bf16",
                     "ms": timer(lambda: F.embedding(ids, table))})
    return rows
