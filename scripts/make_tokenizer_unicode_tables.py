#!/usr/bin/env python3
"""Writes worker/tokenizer/unicode_tables.inc: the Unicode data pdsd's tokenizer needs to match
Hugging Face `tokenizers` exactly.

Why measured and not read from the Unicode Character Database: HF tokenizers mixes three Unicode
versions — its regexes (Oniguruma) know Unicode 16, its NFC (the unicode-normalization-alignments
crate) predates Unicode 13, and PCRE2 10.42, which pdsd uses for the regexes, knows Unicode 14. So
this script asks the installed `tokenizers` package itself, code point by code point:

  * which characters its regex classes \\p{L}, \\p{N} and \\s match (pdsd adds to PCRE2's classes
    the letters and numbers PCRE2 does not know yet: kLetterExtra, kNumberExtra, and replaces \\s
    by kWhiteSpace, because PCRE2 also counts U+180E);
  * which characters count as whitespace and as word characters around an added token with
    lstrip/rstrip or single_word (those checks use the Rust `regex` crate: kStripSpace, kWordChar);
  * its canonical decompositions, combining classes and compositions (for NFC and NFD).

Every table is derived from the peer, and tests/test_tokenizer_unicode_matches_hf.cpp checks the
result against it again on every code point. Run with the venv python:

    .venv/bin/python scripts/make_tokenizer_unicode_tables.py
"""
import pathlib
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Tokenizer, models, normalizers

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "peer"))
from hf_unicode_probe import ALL, per_char, ranges, regex_class  # noqa: E402

OUT = ROOT / "worker" / "tokenizer" / "unicode_tables.inc"


def python_category_class(prefix):
    """The same class as PCRE2 10.42 sees it: Unicode 14, which is also Python 3.11's database."""
    return {cp for cp in ALL if unicodedata.category(chr(cp)).startswith(prefix)}


def added_token_probe(make_token, segment):
    """Code points c for which the added token matched inside `segment(c)` (one encode for all)."""
    tok = Tokenizer(models.BPE())
    token = make_token()
    tok.add_tokens([token])
    tid = tok.token_to_id(token.content)
    pieces, starts = [], []
    pos = 0
    for cp in ALL:
        seg = segment(chr(cp))
        pieces.append(seg)
        starts.append(pos)
        pos += len(seg)
    text = "".join(pieces)
    enc = tok.encode(text)
    hits = [off for i, off in zip(enc.ids, enc.offsets) if i == tid]
    return hits, starts


def strip_space():
    # "x" + c + "<T>": with lstrip the token starts at c exactly when c is whitespace.
    hits, starts = added_token_probe(
        lambda: AddedToken("<T>", lstrip=True, rstrip=False, single_word=False, normalized=False),
        lambda c: "x" + c + "<T>")
    begins = {off[0] for off in hits}
    return [cp for cp, s in zip(ALL, starts) if s + 1 in begins]


def word_chars():
    # c + "<W> ": a single_word token matches exactly when the character before it is not a word char.
    hits, starts = added_token_probe(
        lambda: AddedToken("<W>", lstrip=False, rstrip=False, single_word=True, normalized=False),
        lambda c: c + "<W> ")
    begins = {off[0] for off in hits}
    return [cp for cp, s in zip(ALL, starts) if s + 1 not in begins]


def combining_classes():
    """HF's canonical combining class for every character Unicode 14 gives a nonzero one.

    HF's tables are older, so a newer mark has class 0 there. Probe: after U+0334 (class 1) a mark
    with a larger class moves before it; before U+0345 (class 240) a mark with a smaller nonzero
    class moves before it. The value itself is stable across Unicode versions."""
    nfd = normalizers.NFD()
    marks = [cp for cp in ALL if unicodedata.combining(chr(cp))]
    result = {}
    for cp in marks:
        c = chr(cp)
        d = nfd.normalize_str(c)
        moved_a = nfd.normalize_str("a" + c + "\u0334") != "a" + d + "\u0334"
        moved_b = nfd.normalize_str("a\u0345" + c) != "a\u0345" + d
        if moved_a or moved_b:
            result[cp] = unicodedata.combining(c)
    return result


def emit_ranges(name, cps, why):
    items = [f"{{0x{a:X},0x{b:X}}}" for a, b in ranges(cps)]
    return f"// {why}\ninline constexpr CodePointRange {name}[] = {{{wrap(items)}}};\n"


def wrap(items, width=110):
    """Array initializer items, comma-separated, a few per line."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) + 1 > width:
            lines.append(line)
            line = ""
        line += item + ","
    lines.append(line)
    return "\n    " + "\n    ".join(lines) + "\n"


def main():
    letters = regex_class(r"\p{L}")
    numbers = regex_class(r"\p{N}")
    spaces = regex_class(r"\s")
    letter_extra = set(letters) - python_category_class("L")
    number_extra = set(numbers) - python_category_class("N")
    assert python_category_class("L") <= set(letters), "HF lost letters PCRE2 has: cannot patch by union"
    assert python_category_class("N") <= set(numbers), "HF lost numbers PCRE2 has: cannot patch by union"

    strip = strip_space()
    words = word_chars()

    # Decompositions: HF's NFD of each character, where it changes it (Hangul is algorithmic).
    hangul = range(0xAC00, 0xAC00 + 11172)
    nfd = per_char(normalizers.NFD())
    decomp = {cp: [ord(c) for c in s] for cp, s in nfd.items() if s != chr(cp) and cp not in hangul}
    nfc = per_char(normalizers.NFC())
    nfc_changes = {cp for cp, s in nfc.items() if s != chr(cp)}
    # Primary composites: HF decomposes them and NFC gives them back; their pair is the one-level
    # canonical decomposition (checked to expand to HF's full decomposition).
    compositions = []
    for cp in sorted(decomp):
        if cp in nfc_changes:
            continue
        one = unicodedata.decomposition(chr(cp)).split()
        assert one and not one[0].startswith("<"), hex(cp)
        pair = [int(x, 16) for x in one]
        assert len(pair) == 2, hex(cp)
        full = []
        for p in pair:
            full.extend(decomp.get(p, [p]))
        assert full == decomp[cp], hex(cp)
        compositions.append((pair[0], pair[1], cp))
    ccc = combining_classes()

    data, entries = [], []
    for cp in sorted(decomp):
        entries.append(f"{{0x{cp:X},{len(data)},{len(decomp[cp])}}}")
        data.extend(decomp[cp])

    out = [
        f"// Generated by scripts/make_tokenizer_unicode_tables.py from tokenizers {tokenizers.__version__}"
        f" (Python unicodedata {unicodedata.unidata_version}); do not edit.",
        "// Each table is what HF tokenizers does, measured code point by code point (see the script).",
        "",
        emit_ranges("kLetterExtra", letter_extra,
                    "Letters HF's regex \\p{L} matches beyond Unicode 14's (PCRE2 10.42 knows 14)."),
        emit_ranges("kNumberExtra", number_extra, "Same for \\p{N}."),
        emit_ranges("kWhiteSpace", spaces, "HF's regex \\s (PCRE2's \\s also matches U+180E)."),
        emit_ranges("kStripSpace", strip, "Whitespace that lstrip/rstrip of an added token absorbs."),
        emit_ranges("kWordChar", words, "Word characters for an added token's single_word check."),
        emit_ranges("kNfcChanges", nfc_changes, "Characters that NFC alone replaces (not NFC-stable)."),
        "// Canonical combining classes (nonzero only), sorted.",
        "inline constexpr CombiningClassEntry kCombiningClass[] = {"
        + wrap([f"{{0x{cp:X},{v}}}" for cp, v in sorted(ccc.items())]) + "};",
        "// Full canonical decompositions (Hangul syllables excluded: algorithmic), sorted.",
        "inline constexpr char32_t kDecompositionData[] = {"
        + wrap([f"0x{c:X}" for c in data]) + "};",
        "inline constexpr DecompositionEntry kDecomposition[] = {" + wrap(entries) + "};",
        "// Canonical compositions (first, second) -> composite, sorted by (first, second).",
        "inline constexpr CompositionEntry kComposition[] = {"
        + wrap([f"{{0x{a:X},0x{b:X},0x{c:X}}}" for a, b, c in sorted(compositions)]) + "};",
        "",
    ]
    OUT.write_text("\n".join(out))
    print(f"wrote {OUT}: {len(letter_extra)} extra letters, {len(number_extra)} extra numbers, "
          f"{len(spaces)} spaces, {len(strip)} strip spaces, {len(words)} word chars, "
          f"{len(decomp)} decompositions, {len(compositions)} compositions, {len(ccc)} combining classes")


if __name__ == "__main__":
    main()
