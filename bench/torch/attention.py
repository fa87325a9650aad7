"""PyTorch peers of bench/attention.cpp: F.scaled_dot_product_attention for prefill and GQA decode."""
import torch
import torch.nn.functional as F


def run(timer):
    dev = "cuda"
    rows = []
    torch.manual_seed(0)

    b, h, s, d = 8, 32, 2048, 128
    q = torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16)
    k = torch.randn_like(q)
    v = torch.randn_like(q)
    for causal in (True, False):
        rows.append({"op": "sdpa", "shape": f"B{b}H{h}S{s}D{d}.causal{int(causal)}", "dtype": "bf16",
                     "ms": timer(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))})
    del q, k, v

    b, hq, hkv, d = 16, 32, 8, 128
    for length in (4096, 32768):
        q = torch.randn(b, hq, 1, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(b, hkv, length, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        rows.append({"op": "sdpa_decode", "shape": f"B{b}.Hq{hq}.Hkv{hkv}.L{length}.D{d}", "dtype": "bf16",
                     "ms": timer(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))})
        del q, k, v
    return rows
