"""What HF tokenizers does with each code point, asked of the installed `tokenizers` package.

Used by scripts/make_tokenizer_unicode_tables.py (to generate pdsd's tables) and by
tokenizer_cases.py --unicode (to check them again in the test suite).
"""
from tokenizers import Regex, normalizers, pre_tokenizers

ALL = [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]


def regex_class(pattern):
    """Code points that HF's regex engine matches with a one-character `pattern`."""
    text = "".join(chr(cp) for cp in ALL)
    kept = pre_tokenizers.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text)
    unmatched = set()
    for _, (start, end) in kept:  # offsets are in characters
        unmatched.update(ALL[start:end])
    return [cp for cp in ALL if cp not in unmatched]


def per_char(normalizer, cps=ALL):
    """{cp: normalizer applied to that character alone} (characters joined by newlines, which never
    interact with their neighbours under NFC/NFD)."""
    cps = [cp for cp in cps if cp != 0x0A]
    out = normalizer.normalize_str("\n".join(chr(cp) for cp in cps)).split("\n")
    assert len(out) == len(cps)
    return dict(zip(cps, out))


def nfc_per_char():
    return per_char(normalizers.NFC())


def nfd_per_char():
    return per_char(normalizers.NFD())


def ranges(cps):
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out
