#!/usr/bin/env python3
"""Comparison 1, forward / perplexity: our `cushioncache eval` against transformers' eager
LlamaForCausalLM, float32 on the CPU, WikiText-2 perplexity with the same windows.

Cases:
  SmolLM2-135M   our eval reads the .gguf; transformers reads the folder our `convert`
                 writes from it (the same dequantized weights) and tokenizes with its own
                 tokenizer built from the .gguf, checked against ours
  stories260K    the llama2.c checkpoint; transformers reads our `convert` of it
  LLaMA-7B block one random block of LLaMA-7B's shapes (hidden 4096, 32 heads, MLP 11008),
                 a 512-token vocabulary, written by transformers' save_pretrained, which
                 both sides then read (left out by --quick)

  compare_forward.py --cli BUILD --threads N --reps R --out DIR [--quick]

Rows on stdout (perplexity_pairs.HEADER's columns), DIR/compare_forward.json, exit 1 if a
perplexity differs by more than 1e-4 relative. Protocol: cushioncache/eval/perplexity.cpp
(GPTQ's: corpus tokenized once, non-overlapping windows, the first token of each unscored).
"""
import sys

import perplexity_pairs as pairs
from perplexity_pairs import Case

SEQ_LEN = 512
BLOCK_SEED = 0


def smollm2_case(args, windows):
    ids, same, note = pairs.smollm2_ids(args, windows * SEQ_LEN)
    ours = ["--model", pairs.model_path(), "--ppl", "wikitext2", "--seq-len", SEQ_LEN, "--max-windows", windows]
    return Case("1 forward", "SmolLM2-135M, WikiText-2", ours, pairs.converted(args, pairs.model_path(), "smollm2"),
                ids, SEQ_LEN, windows, ids_agree=same, notes=[note])


def stories_case(args, windows):
    model, tokenizer = pairs.stories_files()
    ids, note = pairs.tok512_ids(args, windows * SEQ_LEN)
    ours = ["--model", model, "--tokenizer", tokenizer, "--ppl", "wikitext2", "--seq-len", SEQ_LEN,
            "--max-windows", windows]
    return Case("1 forward", "stories260K, WikiText-2", ours, pairs.converted(args, model, "stories260K"), ids,
                SEQ_LEN, windows, notes=[note])


def llama7b_block_folder(args):
    """A one-block LlamaForCausalLM of LLaMA-7B's block shapes, random (seed 0), made once.

    The vocabulary is tok512's so that our eval can tokenize WikiText-2 for it; the
    embedding and head are then negligible beside the block (0.2% of its FLOPs).
    """
    folder = args.out / "hf" / "llama7b-block"
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    import transformers
    torch.manual_seed(BLOCK_SEED)
    config = transformers.LlamaConfig(vocab_size=512, hidden_size=4096, intermediate_size=11008, num_hidden_layers=1,
                                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    transformers.LlamaForCausalLM(config).to(torch.float32).save_pretrained(folder)
    return folder


def llama7b_block_case(args, windows):
    _, tokenizer = pairs.stories_files()
    ids, note = pairs.tok512_ids(args, windows * SEQ_LEN)
    folder = llama7b_block_folder(args)
    ours = ["--model", folder, "--tokenizer", tokenizer, "--ppl", "wikitext2", "--seq-len", SEQ_LEN,
            "--max-windows", windows]
    return Case("1 forward", "LLaMA-7B-shaped block (random, 1 layer)", ours, folder, ids, SEQ_LEN, windows,
                notes=[note, "written by transformers' save_pretrained; both sides read that folder"])


def build_cases(args):
    if args.quick:
        return [smollm2_case(args, 1), stories_case(args, 4)]
    return [smollm2_case(args, 4), stories_case(args, 16), llama7b_block_case(args, 2)]


if __name__ == "__main__":
    sys.exit(pairs.main("compare_forward", __doc__, build_cases))
