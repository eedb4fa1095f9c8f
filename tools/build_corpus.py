#!/usr/bin/env python3
"""Assembles the English pretraining corpus for `cushioncache train` from what this
machine holds: the shared C4 documents and free text from Debian packages. WikiText-2
stays out (it is the held-out evaluation text). Documents are exact-deduplicated and
written in a fixed order, so the same inputs give the same bytes; MANIFEST.json records
each source's package version, document count and size, and the corpus's sha256.

Standard library only. Usage: build_corpus.py DATA_DIR OUT_DIR (scripts/build_corpus.sh
installs the packages first)."""

import glob
import hashlib
import json
import os
import re
import subprocess
import sys

MIN_CHARS = 32  # shorter pieces (empty fortunes, stray headings) carry no text


def package_version(package):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True, capture_output=True,
                              text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def c4_documents(data_dir):
    path = os.path.join(data_dir, "text", "c4", "c4_validation_2k.jsonl")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)["text"]


def bible_documents():
    """One document per chapter of the King James Bible, verse numbers dropped."""
    text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True).stdout
    chapter, verses = None, []
    for line in text.decode("utf-8", errors="replace").splitlines():
        m = re.match(r"^(\w+?)(\d+):\d+ (.*)$", line)
        if not m:
            if verses and line.strip():
                verses[-1] += " " + line.strip()
            continue
        key = (m.group(1), m.group(2))
        if key != chapter and verses:
            yield " ".join(verses)
            verses = []
        chapter = key
        verses.append(m.group(3).strip())
    if verses:
        yield " ".join(verses)


def fortune_documents():
    """Every fortune of the fortunes package (not the offensive set), one document each."""
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if path.endswith((".dat", ".u8")) or os.path.isdir(path) or os.path.islink(path):
            continue
        for piece in read_text(path).split("\n%\n"):
            yield piece.strip("%\n")


def python_doc_documents():
    """The reStructuredText sources of the Python 3.11 documentation, one page each."""
    root = "/usr/share/doc/python3.11/html/_sources"
    for path in sorted(glob.glob(os.path.join(root, "**", "*.txt"), recursive=True)):
        yield read_text(path)


SOURCES = [
    ("c4", None, c4_documents),
    ("bible-kjv", "bible-kjv-text", lambda _: bible_documents()),
    ("fortunes", "fortunes", lambda _: fortune_documents()),
    ("python3.11-doc", "python3.11-doc", lambda _: python_doc_documents()),
]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: build_corpus.py DATA_DIR OUT_DIR")
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    seen = set()
    manifest = {"sources": {}, "held_out": "WikiText-2 (evaluation only)"}
    out_path = os.path.join(out_dir, "train.jsonl")
    tmp_path = out_path + ".tmp"
    digest = hashlib.sha256()
    total_docs = total_bytes = 0
    with open(tmp_path, "w", encoding="utf-8", newline="\n") as out:
        for name, package, documents in SOURCES:
            kept = duplicates = size = 0
            for text in documents(data_dir):
                text = text.replace("\r\n", "\n").strip()
                if len(text) < MIN_CHARS:
                    continue
                key = hashlib.sha256(text.encode("utf-8")).digest()
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                line = json.dumps({"text": text, "source": name}, ensure_ascii=False) + "\n"
                out.write(line)
                digest.update(line.encode("utf-8"))
                kept += 1
                size += len(text.encode("utf-8"))
            manifest["sources"][name] = {"package": package, "version": package_version(package) if package else None,
                                         "documents": kept, "duplicates_dropped": duplicates, "text_bytes": size}
            total_docs += kept
            total_bytes += size
            print(f"{name}: {kept} documents, {size / 1e6:.1f} MB of text ({duplicates} duplicates dropped)", file=sys.stderr)
    os.replace(tmp_path, out_path)
    manifest.update({"file": "train.jsonl", "documents": total_docs, "text_bytes": total_bytes,
                     "file_bytes": os.path.getsize(out_path), "sha256": digest.hexdigest()})
    with open(os.path.join(out_dir, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"corpus: {out_path}, {total_docs} documents, {total_bytes / 1e6:.1f} MB, sha256 {manifest['sha256']}", file=sys.stderr)


if __name__ == "__main__":
    main()
