#!/usr/bin/env python3
"""Our GGUF tokenizer against transformers' tokenizer loaded from the same GGUF file.

Encodes a few hundred strings (ASCII prose, code, digits and long numbers, runs of
spaces, tabs and newlines, accented Latin, CJK, emoji, chat markers, the test strings of
llama.cpp's vocabulary files in the shared data) with `cushioncache tokenize --lines`
and with transformers' `AutoTokenizer.from_pretrained(folder, gguf_file=name)`, both
without BOS (ours `--bos no`, theirs `add_special_tokens=False`), and compares the ids.

transformers builds a GGUF tokenizer from its own table of pre-tokenizers, which has no
entry for tokenizer.ggml.pre = "smollm": it falls back to GPT-2's split, which keeps runs
of digits together ("2024" one piece). SmolLM2's own tokenizer.json, and llama.cpp for
"smollm", split every digit first (Digits(individual_digits=True) before the byte-level
split). So the comparison that must match is against transformers' tokenizer with that
pre-tokenizer put back; the differences against transformers' conversion as it is are
reported, and must all be strings with digits.

  python3 tools/tokenizer_parity.py --cli build/examples/cli/cushioncache
                                    [--gguf ~/.cache/cushioncache/models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                    [--data-dir ../shared/data] [--report parity.json]

Exit status: 0 agree, 1 differ, 77 (skip) when transformers/tokenizers cannot be imported
or the model file is missing. ctest runs it as parity.tokenizer_smollm2.
"""
import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

import project_paths


def skip(why):
    # tests/cli/python_parity.cmake turns this into a failure under CC_REQUIRE_DATA=1.
    print(f"SKIPPED: {why}")
    sys.exit(77)


try:
    import transformers
    from tokenizers import pre_tokenizers
except ImportError as missing:
    skip(f"{missing}: run scripts/setup.sh python (transformers, tokenizers, gguf)")

def vocab_test_strings(data_dir):
    """The strings of llama.cpp's tokenizer tests, cut as tests/test-tokenizer-0.cpp does."""
    strings = []
    for inp in sorted((data_dir / "tokenizers" / "gguf").glob("*.inp")):
        raw = inp.read_text(encoding="utf-8")
        parts, pos, sep = [], 0, "\n__ggml_vocab_test__\n"
        while pos < len(raw):
            nxt = raw.find(sep, pos)
            if nxt < 0:
                parts.append(raw[pos:])
                break
            parts.append(raw[pos:nxt])
            pos = nxt + len(sep)
        strings += [p for p in parts if p not in strings]
    return strings


def wikitext_lines(data_dir, count):
    path = data_dir / "text" / "wikitext-2-raw" / "wiki.test.raw"
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return lines[:count]


def test_strings(data_dir):
    prose = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, we can use the same tokenizer everywhere.",
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "It's a truth universally acknowledged; isn't it? They'll say we'd've known.",
        "Dr. Smith (born 1956) moved to New York in the 1980s -- and stayed.",
        "\"Quoted text,\" she said, 'and more quoted text.'",
        "e-mail: someone@example.com, web: https://example.org/path?query=1&x=y#frag",
        "ALL CAPS TEXT AND MiXeD cAsE tExT",
    ]
    code = [
        "def f(x):\n    return x * 2\n",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "#include <vector>\nint main() { return 0; }",
        "if __name__ == \"__main__\":\n\tmain()",
        "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
        "const x = {a: 1, b: [2, 3]}; // comment",
        "    indented = True\n        more_indented = False",
        "x+=1;y-=2;z*=3;w/=4;v%=5;u**=6",
        "<div class=\"a\">&nbsp;</div>",
        "$ ls -la | grep '^d' > out.txt 2>&1",
    ]
    numbers = ["3", "33", "333", "3333", "33333", "123456789", "1234567890123456789", "3.14159265358979",
               "1,000,000", "2024-01-31", "0x1F2E3D", "v1.2.3", "1e-10", "-42", "+7", "50%", "$19.99",
               "12:34:56", "(555) 123-4567", "a1b2c3", "ID: 00042", "٣٤٥", "½ ¾ ²", "Ⅻ"]
    spaces = [" ", "  ", "   ", "    ", " x", "  x", "x ", "x  ", "a    b", "a\tb", "\t\t", "\n", "\n\n", "\n\n\n",
              "\r\n", " \n ", "\n \n", "a \n b", "   \t  \n  ", "trailing spaces   ", "   leading spaces",
              "\u00a0non-breaking\u00a0space", "ideographic\u3000space", "line\u2028separator"]
    unicode = ["Café déjà vu.", "naïve façade coöperate", "Ångström Ærøskøbing", "Cửa Việt", "e\u0301 (combining)",
               "Straße", "Ελληνικά κείμενα", "нещо на Български", "עברית", "العربية", "हिन्दी",
               "我想在apple工作1314151天～", "日本語のテキストです。", "한국어 텍스트", "ภาษาไทย",
               "🚀", "😶‍🌫️", "👍🏽", "🇫🇷🇩🇪", "🦙.cpp", "✅ done", "→ ← ↑ ↓", "∑ ∫ √ ∞ ≠ ≤", "™ © ®"]
    chat = ["<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "a<|im_end|>b"]
    fixed = prose + code + numbers + spaces + unicode + chat
    # Mixtures: random joins of the pieces above, so boundaries between kinds get tested.
    rng = random.Random(1234)
    pool = prose + code + numbers + spaces + unicode
    mixed = []
    for _ in range(120):
        k = rng.randint(2, 5)
        mixed.append(rng.choice(["", " ", "\n"]).join(rng.choice(pool) for _ in range(k)))
    strings = fixed + mixed + wikitext_lines(data_dir, 80) + vocab_test_strings(data_dir)
    seen, unique = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def ours(cli, gguf, strings, bos):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for s in strings:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
        path = f.name
    try:
        run = subprocess.run([cli, "tokenize", "--tokenizer", str(gguf), "--lines", path, "--bos", bos],
                             capture_output=True, text=True)
    finally:
        os.unlink(path)
    if run.returncode != 0:
        sys.exit(f"cushioncache tokenize failed ({run.returncode}):\n{run.stderr}")
    lines = run.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == len(strings) + 1, "one line of ids per string"
    return [[int(x) for x in line.split()] for line in lines[:-1]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", default="build/examples/cli/cushioncache")
    parser.add_argument("--gguf", type=pathlib.Path, default=project_paths.smollm2_gguf())
    parser.add_argument("--data-dir", type=pathlib.Path,
                        default=project_paths.data_dir())
    parser.add_argument("--report", type=pathlib.Path, help="write the comparison as JSON")
    args = parser.parse_args()
    if not args.gguf.exists():
        skip(f"{args.gguf} not found (set CC_MODEL_DIR; scripts/fetch_models.sh fetches it)")

    strings = test_strings(args.data_dir)
    hf = transformers.AutoTokenizer.from_pretrained(str(args.gguf.parent), gguf_file=args.gguf.name)
    converted = [hf(s, add_special_tokens=False)["input_ids"] for s in strings]
    with_bos = [hf(s, add_special_tokens=True)["input_ids"] for s in strings[:10]]

    # SmolLM2's own pre-tokenizer (its tokenizer.json), which llama.cpp's "smollm" reproduces.
    backend = hf.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    reference = [backend.encode(s, add_special_tokens=False).ids for s in strings]

    mine = ours(args.cli, args.gguf, strings, "no")
    mine_auto = ours(args.cli, args.gguf, strings[:10], "auto")

    differ = [i for i in range(len(strings)) if mine[i] != reference[i]]
    conversion_differs = [i for i in range(len(strings)) if converted[i] != reference[i]]
    unexplained = [i for i in conversion_differs if not any(c.isdigit() or c.isnumeric() for c in strings[i])]
    bos_id = hf.bos_token_id
    auto_adds_bos = any(ids[:1] == [bos_id] for ids in mine_auto)
    hf_adds_bos = any(ids[:1] == [bos_id] and ids[1:] == converted[i] for i, ids in enumerate(with_bos))

    print(f"{len(strings)} strings; transformers {transformers.__version__}; {args.gguf.name}")
    print(f"ours vs transformers with SmolLM2's digit-splitting pre-tokenizer: {len(differ)} differ")
    print(f"transformers' GGUF conversion as it is vs that: {len(conversion_differs)} differ "
          f"(all with digits: {not unexplained})")
    print(f"BOS: ours --bos auto adds BOS: {auto_adds_bos} (metadata add_bos_token = false); "
          f"transformers add_special_tokens=True adds BOS: {hf_adds_bos}")
    for i in differ[:20]:
        print(f"  DIFFER {strings[i]!r}\n    ours   {mine[i]}\n    theirs {reference[i]}")
    for i in conversion_differs[:5]:
        print(f"  conversion without digit split: {strings[i]!r}: {converted[i]} vs {reference[i]}")
    if args.report:
        args.report.write_text(json.dumps({
            "strings": len(strings), "transformers": transformers.__version__,
            "differ": [{"text": strings[i], "ours": mine[i], "reference": reference[i]} for i in differ],
            "conversion_differs": [{"text": strings[i], "converted": converted[i], "reference": reference[i]}
                                   for i in conversion_differs],
            "ours_auto_adds_bos": auto_adds_bos, "transformers_adds_bos": hf_adds_bos,
        }, ensure_ascii=False, indent=1))
    ok = not differ and not unexplained and not auto_adds_bos
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
