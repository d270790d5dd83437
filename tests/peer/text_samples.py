"""Deterministic, varied text for tokenizer tests, training and benchmarks.

Every generator takes a random.Random and returns a string; the same seed always gives the same
strings (the Python stdlib sources used for the code samples are whatever the running Python
ships, which is fine: expected ids are always computed by the peer at test time).

The mix aims at what breaks tokenizers: Chinese and other scripts, code, emoji with ZWJ sequences
and modifiers, whitespace runs (tabs, CR/LF, trailing spaces, Unicode spaces), digit runs,
contractions in mixed case (and the long s that case-folds to s), combining marks and decomposed
text (NFC), Hangul jamo, control and zero-width characters, random code points from all planes
(assigned or not; no surrogates), and added/special tokens embedded in text.
"""
import glob
import os
import random
import sysconfig
import unicodedata

ENGLISH = """the of and to in is you that it he was for on are as with his they at be this have from or one had
by word but not what all were we when your can said there use an each which she do how their if will up other
about out many then them these so some her would make like him into time has look two more write go see number
no way could people my than first water been call who oil its now find long down day did get come made may part
model training token data learning rate batch gradient loss layer attention weight tensor python function class
return value string list dict error file path config server request response user system assistant message hello
world Hello World The This When What Why How I We You They It""".split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'Ve", "'M",
                "'LL", "'Ll", "'D", "'ſ", "'K", "’s", "’t", "'x", "'"]
CJK_PUNCT = "，。、！？：；“”‘’（）《》【】…—·「」"
EMOJI = ["😀", "😂", "🥲", "🤖", "🔥", "✨", "🚀", "❤️", "👍", "👍🏽", "👋🏿", "🇯🇵", "🇺🇸", "🇨🇳", "1️⃣", "#️⃣",
         "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🧑🏽‍🚀", "👁️‍🗨️", "🐈‍⬛", "❤️‍🔥", "🫠", "🪿", "☕", "⚡", "©️", "™"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u3000", "\u2028",
          "\u2009", "\u200b", "\u180e", "\u0085", "\x0b", "\x0c", " \t \n"]
ODD = ["\x00", "\x01", "\x1b", "\x7f", "\ufeff", "\u00ad", "\u200d", "\u200c", "\u2060", "\ufffd", "\U000e0041",
       "\ue000", "\U000f0000", "\U0010ffff", "\ufdd0", "\uffff"]
# NFC-sensitive: decomposed letters, singletons, compatibility ideographs, composition exclusions.
NFC_CASES = ["e\u0301", "A\u030a", "\u212b", "\u2126", "\u1e9b\u0323", "\uf900", "\u0958", "o\u0308\u0304",
             "a\u0323\u0302", "a\u0302\u0323", "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "\u0344",
             "\u0f73", "q\u0307\u0323", "\u05d0\u05b7", "\u0928\u093c", "\u0b47\u0b3e", "\u0cc6\u0cc2"]
SCRIPTS = {  # letter ranges to build pseudo-words from
    "latin": [(0x61, 0x7A), (0xE0, 0xFF), (0x100, 0x17F)],
    "cyrillic": [(0x430, 0x44F)], "greek": [(0x3B1, 0x3C9)], "arabic": [(0x627, 0x64A)],
    "hebrew": [(0x5D0, 0x5EA)], "devanagari": [(0x915, 0x939), (0x93E, 0x94C)], "thai": [(0xE01, 0xE2E)],
    "hangul": [(0xAC00, 0xD7A3)], "hiragana": [(0x3041, 0x3096)], "katakana": [(0x30A1, 0x30FA)],
    "armenian": [(0x561, 0x586)], "georgian": [(0x10D0, 0x10FA)], "tamil": [(0xB85, 0xBB9)],
    "ethiopic": [(0x1200, 0x1248)], "cjk_ext_b": [(0x20000, 0x20100)], "math": [(0x1D400, 0x1D433)],
}


def _stdlib_files():
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    return [f for f in files if os.path.getsize(f) > 2000]


_CODE_LINES = None


def code_lines():
    global _CODE_LINES
    if _CODE_LINES is None:
        lines = []
        for f in _stdlib_files()[:60]:
            with open(f, encoding="utf-8", errors="replace") as fh:
                lines.extend(fh.read().splitlines())
        _CODE_LINES = lines
    return _CODE_LINES


def _pick_range(rng, ranges):
    a, b = rng.choice(ranges)
    return chr(rng.randint(a, b))


def _zipf(rng, pool):
    # Frequent items first: a skewed pick so that BPE finds merges.
    return pool[min(len(pool) - 1, int(rng.paretovariate(1.2)) - 1)]


_CJK_POOL = None


def cjk_pool():
    global _CJK_POOL
    if _CJK_POOL is None:
        r = random.Random(7)
        _CJK_POOL = [chr(r.randint(0x4E00, 0x9FA5)) for _ in range(1500)]
    return _CJK_POOL


def english(rng):
    words = []
    for _ in range(rng.randint(3, 25)):
        w = rng.choice(ENGLISH)
        if rng.random() < 0.1:
            w = w.upper()
        if rng.random() < 0.08:
            w += rng.choice(CONTRACTIONS)
        words.append(w)
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ":", "", "..."])


def chinese(rng):
    out = []
    for _ in range(rng.randint(2, 12)):
        out.append("".join(_zipf(rng, cjk_pool()) for _ in range(rng.randint(1, 4))))
        if rng.random() < 0.3:
            out.append(rng.choice(CJK_PUNCT))
    if rng.random() < 0.3:
        out.insert(rng.randrange(len(out)), rng.choice(["GPU", "Python", "2024年", "3.5", " AI ", "Qwen2"]))
    return "".join(out)


def code(rng):
    lines = code_lines()
    start = rng.randrange(len(lines))
    return "\n".join(lines[start:start + rng.randint(1, 12)])


def emoji(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        parts.append(rng.choice(EMOJI))
        if rng.random() < 0.4:
            parts.append(rng.choice([" ", "", "!", " hi ", "好", "\n"]))
    return "".join(parts)


def whitespace(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        parts.append(rng.choice(SPACES) * rng.randint(1, 4))
        if rng.random() < 0.6:
            parts.append(rng.choice(ENGLISH + ["x", "1", "中", "!", "é"]))
    return "".join(parts)


def digits(rng):
    kinds = [lambda: str(rng.randint(0, 10 ** rng.randint(1, 15))), lambda: f"{rng.random() * 1000:.{rng.randint(1, 6)}f}",
             lambda: f"{rng.randint(0, 10 ** 9):,}", lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))),
             lambda: "１２３４５", lambda: "٠١٢٣٤٥٦٧٨٩", lambda: "४२", lambda: "Ⅻ", lambda: "½¾", lambda: "𝟙𝟚𝟛",
             lambda: rng.choice(ENGLISH) + str(rng.randint(0, 99999)) + rng.choice(ENGLISH)]
    return rng.choice([" ", "", "-", "+", "x", "\n"]).join(rng.choice(kinds)() for _ in range(rng.randint(1, 5)))


def contractions(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        w = rng.choice(ENGLISH + ["I", "DON", "we", "They", "it", "O"])
        out.append(w + rng.choice(CONTRACTIONS) + rng.choice(["", "s", "ll", " ", "'", "!"]))
    return rng.choice([" ", "", "\n"]).join(out)


def scripts(rng):
    words = []
    for _ in range(rng.randint(1, 10)):
        ranges = SCRIPTS[rng.choice(sorted(SCRIPTS))]
        words.append("".join(_pick_range(rng, ranges) for _ in range(rng.randint(1, 8))))
    return rng.choice([" ", "", "\n", ", "]).join(words)


def combining(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.3:
            out.append(rng.choice(NFC_CASES))
        elif r < 0.6:  # a base with random combining marks in random order
            base = rng.choice("aeiouAEIOUnczsgkαβаеяאabc中가")
            marks = [chr(rng.choice([rng.randint(0x300, 0x36F), rng.randint(0x1DC0, 0x1DFF), rng.randint(0x591, 0x5C7),
                                     rng.randint(0x93C, 0x94D), 0x3099, 0x309A, rng.randint(0x20D0, 0x20F0)]))
                     for _ in range(rng.randint(1, 4))]
            out.append(base + "".join(marks))
        elif r < 0.8:  # decomposed text
            out.append(unicodedata.normalize("NFD", rng.choice(["café", "Ångström", "naïve", "Việt Nam", "한국어",
                                                                 "ḍ̇", "Œuvre", "résumé", "Åå"])))
        else:  # Hangul jamo sequences
            out.append("".join(chr(rng.choice([rng.randint(0x1100, 0x1112), rng.randint(0x1161, 0x1175),
                                               rng.randint(0x11A8, 0x11C2)])) for _ in range(rng.randint(1, 5))))
    return rng.choice(["", " "]).join(out)


def random_code_points(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        r = rng.random()
        if r < 0.5:
            cp = rng.randint(0, 0x2FFFF)
        elif r < 0.7:
            cp = rng.randint(0, 0x10FFFF)
        else:
            cp = rng.randint(0x20, 0x7E)
        if 0xD800 <= cp < 0xE000:
            cp = 0xFFFD
        out.append(chr(cp))
    return "".join(out)


def odd(rng):
    return "".join(rng.choice(ODD + ["a", " ", "\n", "中"]) for _ in range(rng.randint(1, 8)))


GENERATORS = [english, chinese, code, emoji, whitespace, digits, contractions, scripts, combining,
              random_code_points, odd]


def mixed(rng, specials=()):
    gens = GENERATORS + ([lambda r: special_text(r, specials)] if specials else [])
    parts = [rng.choice(gens)(rng) for _ in range(rng.randint(2, 5))]
    return "".join(p + rng.choice(["", " ", "\n", "  ", "\t"]) for p in parts)


def special_text(rng, specials):
    """Text with added tokens embedded: whole, glued to words, partial, doubled, chat-formatted."""
    specials = list(specials)
    t = rng.choice(specials)
    forms = [
        lambda: f"{t}user\nhi{rng.choice(specials)}",
        lambda: f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{english(rng)}"
                f"<|im_end|>\n<|im_start|>assistant\n",
        lambda: f"abc{t}def",
        lambda: f" {t} ",
        lambda: f"{t}{t}",
        lambda: t[:-1] + " " + t[1:],
        lambda: t[: max(1, len(t) // 2)],
        lambda: f"{english(rng)} {t}\n{chinese(rng)}",
        lambda: f"\n\n{t}  \t",
        lambda: t.upper(),
    ]
    return rng.choice(forms)()


def cases(seed, n, specials=()):
    """n varied strings: every generator in turn, then mixtures, with some long documents."""
    rng = random.Random(seed)
    gens = GENERATORS + ([lambda r: special_text(r, specials)] if specials else [])
    out = []
    for i in range(n):
        if i % 100 == 99:
            out.append("".join(mixed(rng, specials) for _ in range(rng.randint(10, 40))))
        elif i % 3 == 2:
            out.append(mixed(rng, specials))
        else:
            out.append(gens[i % len(gens)](rng))
    out[:0] = ["", " ", "\n", "a", "  hello", "hello  ", "\t\tx\n\n", "'s", "'S'", "1234567", "你好，世界！"]
    return out[:n]


def english_and_code(rng):
    """Mostly English prose and Python source, the bulk of many SFT sets."""
    return rng.choice([english, english, english, code, code, contractions, digits])(rng) + rng.choice([" ", "\n", "\n\n"])


def corpus(seed, target_bytes, specials=(), kind="mixed"):
    """Documents of a few KB each, until about target_bytes of UTF-8; kind "mixed" draws on every
    generator, "english_code" on English prose and code only."""
    rng = random.Random(seed)
    part = (lambda: mixed(rng, specials)) if kind == "mixed" else (lambda: english_and_code(rng))
    docs, size = [], 0
    while size < target_bytes:
        doc = "".join(part() for _ in range(rng.randint(5, 60)))
        docs.append(doc)
        size += len(doc.encode("utf-8"))
    return docs
