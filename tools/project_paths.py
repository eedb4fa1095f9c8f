"""Where the project's Python tools find the shared data and the fetched models: the same
environment variables and defaults as the C++ side (core/data_dir.h)."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # scripts/fetch_models.sh


def data_dir():
    return pathlib.Path(os.environ.get("CC_DATA_DIR") or ROOT.parent / "shared/data")


def model_dir():
    return pathlib.Path(os.environ.get("CC_MODEL_DIR") or pathlib.Path.home() / ".cache/cushioncache/models")


def smollm2_gguf():
    return model_dir() / SMOLLM2_GGUF
