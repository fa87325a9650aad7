#!/bin/sh
# Builds a seed corpus for gguf_fuzz from the shared fixtures: the small model files whole, and the heads
# of the vocabulary files (their metadata arrays are large; a truncated head still exercises every parser
# path up to the cut). Usage: fuzz/seed_gguf.sh SHARED_DIR OUT_DIR
set -eu
shared=$1
out=$2
mkdir -p "$out"
cp "$shared/models/qwen2-tiny/qwen2-tiny-tied-q8_0.gguf" "$out/qwen2-q8_0.gguf"
head -c 16384 "$shared/models/stories260K.gguf" > "$out/stories-head.gguf"
for f in "$shared"/tokenizers/*/*.vocab.gguf; do
  head -c 4096 "$f" > "$out/$(basename "$f" .gguf)-head.gguf"
done
