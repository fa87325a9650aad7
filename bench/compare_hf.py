"""Decode and prefill speed of metallic against Hugging Face transformers on the same GPU and shapes.

For each preset, writes a random-weight GGUF with `metallic synth`, times it with `metallic bench`, then times
transformers' Qwen2ForCausalLM (bf16, random weights, eager) on the same shape, and prints both side by side.

    python3 bench/compare_hf.py --metallic build/metallic --presets qwen2.5-0.5b,qwen2.5-7b --type f16
"""
import argparse
import os
import re
import subprocess
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

# Hyperparameters matching metallic's synthetic presets (src/model/synthetic.cpp).
SHAPES = {
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936, True),
    "qwen2.5-1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "qwen2.5-7b": (3584, 18944, 28, 28, 4, 152064, False),
}


def ours(metallic, preset, dtype, prompt, gen, workdir):
    path = os.path.join(workdir, f"{preset}-{dtype}.gguf")
    if not os.path.exists(path):
        subprocess.run([metallic, "synth", "--preset", preset, "--type", dtype, "-o", path], check=True)
    out = subprocess.run([metallic, "bench", "-m", path, "-p", str(prompt), "-n", str(gen), "--reps", "3"],
                         check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    rates = {m.group(1): float(m.group(2)) for m in re.finditer(r"\| (pp|tg)\d+ \| ([0-9.]+)", out)}
    return rates["pp"], rates["tg"]


def hugging_face(preset, prompt, gen):
    hidden, ff, layers, heads, kv_heads, vocab, tied = SHAPES[preset]
    config = Qwen2Config(hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                         tie_word_embeddings=tied, rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
    ids = torch.randint(0, vocab, (1, prompt), device="cuda")
    settings = dict(do_sample=False, min_new_tokens=gen, max_new_tokens=gen, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids, **settings)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        model(ids)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, **settings)
        torch.cuda.synchronize()
        total = time.perf_counter() - start
    del model
    torch.cuda.empty_cache()
    return prompt / prefill, gen / max(total - prefill, 1e-9)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--metallic", default="build/metallic")
    parser.add_argument("--presets", default="qwen2.5-0.5b,qwen2.5-7b")
    parser.add_argument("--type", default="f16")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("--workdir", default="/tmp")
    args = parser.parse_args()
    rows = []
    for preset in args.presets.split(","):
        pp, tg = ours(args.metallic, preset, args.type, args.p, args.n, args.workdir)
        hf_pp, hf_tg = hugging_face(preset, args.p, args.n)
        rows.append((preset, pp, hf_pp, tg, hf_tg))
    print(f"| shape | metallic {args.type} pp{args.p} | transformers bf16 pp{args.p} | speedup | "
          f"metallic tg{args.n} | transformers tg{args.n} | speedup |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for preset, pp, hf_pp, tg, hf_tg in rows:
        print(f"| {preset} | {pp:.1f} | {hf_pp:.1f} | {pp / hf_pp:.2f}x | {tg:.1f} | {hf_tg:.1f} | {tg / hf_tg:.2f}x |")


if __name__ == "__main__":
    main()
