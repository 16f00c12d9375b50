"""The data scripts: what they write is exactly the text they were given, tokenized, and bad input
never leaves anything behind.

data/openwebtext/prepare.py runs offline on local jsonl and txt corpora of a few hundred generated
documents (unicode, newlines, an empty one, the literal text '<|endoftext|>'): token counts equal an
independent tiktoken count plus one end-of-text per document, train and val partition the
documents, decoding the bins (split at end-of-text) gives the documents back, --num_proc 2 writes
the same bytes as one process, and writing in many small shards keeps the tokens in order (the
benchmark script runs too). data/shakespeare/prepare.py agrees with tiktoken on its 90/10
split; data/prepare_text.py round-trips char-level and GPT-2 text. Each bad input (missing file,
empty corpus, wrong text column, unknown dataset offline, non-UTF-8 text, no network and no cached
ranks, token ids past uint16) gives one line on stderr, a non-zero exit, and leaves the output folder
as it was. The scripts run as subprocesses, as a user runs them, with the Hugging Face cache in a
temporary folder.
"""

import importlib.util
import json
import random

import numpy as np
import pytest
import tiktoken
from conftest import REPO, WORDS, make_text, run

from training.errors import UserError

EOT = 50256
OWT = REPO / "data" / "openwebtext" / "prepare.py"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def enc():
    try:
        return tiktoken.get_encoding("r50k_base")  # GPT-2's ranks, loaded without the code under test
    except Exception as e:
        pytest.fail(f"GPT-2's BPE ranks cannot be loaded ({type(e).__name__}); offline, set TIKTOKEN_CACHE_DIR "
                    "as .ci/run does")


@pytest.fixture(scope="module")
def hf_env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf")
    return {**OFFLINE, "HF_HOME": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets")}


def make_documents(n=300, seed=0):
    rng = random.Random(seed)
    pieces = WORDS + ["é", "naïve café", "漢字", "🙂", "<|endoftext|>", "\n", "\n\n", "  ", "\t"]
    docs = [f"Document {i}: " + " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))) for i in range(n)]
    docs[7] = ""  # an empty document stays a document: a lone end-of-text
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The same documents as one jsonl file (with an extra column) and as a folder of .txt files."""
    folder = tmp_path_factory.mktemp("corpus")
    docs = make_documents()
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            f.write(json.dumps({"id": i, "text": doc}, ensure_ascii=False) + "\n")
    (folder / "txt").mkdir()
    for i, doc in enumerate(docs):
        (folder / "txt" / f"{i:04d}.txt").write_text(doc, encoding="utf-8")
    return folder, docs


def prepare_owt(out, hf_env, *args):
    r = run(OWT, *args, "--out_dir", out, env=hf_env)
    assert r.returncode == 0, r.stderr
    return r


def documents_in(path, enc):
    """The documents of a .bin file: its tokens split at end-of-text, decoded."""
    ids = np.fromfile(path, dtype=np.uint16)
    assert ids[-1] == EOT
    ends = np.flatnonzero(ids == EOT)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [enc.decode(ids[a:b].tolist()) for a, b in zip(starts, ends)]


def check_owt_outputs(out, docs, enc, stdout):
    train, val = documents_in(out / "train.bin", enc), documents_in(out / "val.bin", enc)
    assert len(val) >= 1 and len(train) >= 1
    assert sorted(train + val) == sorted(docs)  # a partition of the documents, each given back whole
    n_tokens = sum(len(enc.encode_ordinary(d)) + 1 for d in docs)
    assert (out / "train.bin").stat().st_size + (out / "val.bin").stat().st_size == 2 * n_tokens
    assert f"train: {len(train):,} documents" in stdout and f"val: {len(val):,} document" in stdout
    assert not list(out.glob("*.tmp"))


def test_openwebtext_script_on_local_jsonl_with_one_and_two_processes(corpus, enc, hf_env, tmp_path):
    folder, docs = corpus
    out = tmp_path / "out"
    r = prepare_owt(out, hf_env, "--files", folder / "docs.jsonl", "--num_proc", "1")
    check_owt_outputs(out, docs, enc, r.stdout)
    first = {name: (out / name).read_bytes() for name in ("train.bin", "val.bin")}
    (out / "meta.json").write_bytes(b"stale char vocabulary")
    (out / "meta.pkl").write_bytes(b"older stale char vocabulary")
    # Again over the existing outputs, with two processes: the same bytes, and no stale vocabulary.
    r = prepare_owt(out, hf_env, "--files", folder / "docs.jsonl", "--num_proc", "2")
    assert {name: (out / name).read_bytes() for name in first} == first
    assert not (out / "meta.json").exists() and not (out / "meta.pkl").exists()


def test_the_arrow_cache_goes_where_it_is_told_not_under_home(corpus, tmp_path):
    folder, _ = corpus
    home = tmp_path / "home"
    env = {**OFFLINE, "HOME": str(home), "HF_HOME": str(home / ".cache" / "huggingface")}
    r = run(OWT, "--files", folder / "docs.jsonl", "--out_dir", tmp_path / "out", "--cache_dir", tmp_path / "cache",
            "--num_proc", "1", env=env)
    assert r.returncode == 0, r.stderr
    cached = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert cached > 0 and not [p for p in home.rglob("*") if p.is_file()]
    assert f"datasets' Arrow cache of this corpus: {cached / 2**20:,.0f} MiB in {tmp_path / 'cache'}" in r.stdout


def test_openwebtext_script_on_a_folder_of_txt_documents(corpus, enc, hf_env, tmp_path):
    folder, docs = corpus
    out = tmp_path / "out"
    r = prepare_owt(out, hf_env, "--files", folder / "txt", "--num_proc", "2", "--val_size", "0.1")
    check_owt_outputs(out, docs, enc, r.stdout)
    assert f"val: {len(docs) // 10:,} documents" in r.stdout


def test_shakespeare_bpe_script_matches_tiktoken(enc, tmp_path):
    real = REPO / "data" / "shakespeare" / "input.txt"
    text = real.read_text(encoding="utf-8") if real.exists() else make_text()
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    r = run("data/shakespeare/prepare.py", "--out", tmp_path)  # the older spelling still works
    assert r.returncode == 0, r.stderr
    cut = int(len(text) * 0.9)
    for split, part in (("train", text[:cut]), ("val", text[cut:])):
        expected = enc.encode_ordinary(part)
        assert np.fromfile(tmp_path / f"{split}.bin", dtype=np.uint16).tolist() == expected
        assert f"{split} has {len(expected):,} tokens" in r.stdout


def decode_char_dataset(folder):
    itos = json.loads((folder / "meta.json").read_text(encoding="utf-8"))["itos"]
    return ["".join(itos[i] for i in np.fromfile(folder / f"{s}.bin", dtype=np.uint16)) for s in ("train", "val")]


def test_prepare_text_char_round_trip_from_a_folder(tmp_path):
    texts = [make_text(200, seed=1), "Ünïcödé and 漢字 too 🙂\n"]
    (tmp_path / "in").mkdir()
    for i, text in enumerate(texts):
        (tmp_path / "in" / f"{i}.txt").write_text(text, encoding="utf-8")
    r = run("data/prepare_text.py", tmp_path / "in", "--out_dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    train, val = decode_char_dataset(tmp_path / "out")
    whole = "\n".join(texts)
    assert train + val == whole and len(train) == int(len(whole) * 0.9)


def test_prepare_text_gpt2_round_trip_replaces_a_char_dataset(enc, tmp_path):
    from data import prepare_text

    text = make_text(300, seed=2)
    prepare_text.prepare(text, str(tmp_path), "char")
    prepare_text.prepare(text, str(tmp_path), "gpt2")
    assert not (tmp_path / "meta.json").exists()  # else train.py would read GPT-2 ids as characters
    ids = [np.fromfile(tmp_path / f"{s}.bin", dtype=np.uint16).tolist() for s in ("train", "val")]
    assert enc.decode(ids[0]) + enc.decode(ids[1]) == text


@pytest.fixture(scope="module")
def owt():
    spec = importlib.util.spec_from_file_location("owt_prepare", OWT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tokenized(docs):
    """A dataset shaped like the OpenWebText script's tokenized splits."""
    import datasets

    features = datasets.Features({"ids": datasets.List(datasets.Value("int32")), "len": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"ids": docs, "len": [len(d) for d in docs]}, features=features)


def test_openwebtext_writes_shard_by_shard_in_order(owt, monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, EOT, rng.integers(0, 12)).tolist() + [EOT] for _ in range(50)]
    monkeypatch.setattr(owt, "SHARD_TOKENS", 7)  # many shards, most ending past a document boundary
    counts = owt.write_outputs({"train": tokenized(docs), "val": tokenized(docs[:1])}, str(tmp_path))
    assert np.fromfile(tmp_path / "train.bin", dtype=np.uint16).tolist() == sum(docs, [])
    assert counts == {"train": sum(map(len, docs)), "val": len(docs[0])}


def test_token_ids_past_uint16_are_refused_before_anything_is_written(owt, tmp_path):
    from data import prepare_text

    many_chars = "".join(chr(0x10000 + i) for i in range(70_000))  # a char vocabulary of 70,000
    with pytest.raises(UserError, match="token id 69999 does not fit uint16"):
        prepare_text.prepare(many_chars, str(tmp_path / "chars"), "char")
    assert not (tmp_path / "chars").exists()

    good, bad = tokenized([[1, 2, EOT]]), tokenized([[5, EOT], [70_000, EOT]])
    with pytest.raises(UserError, match="token id 70000 does not fit uint16"):
        owt.write_outputs({"train": good, "val": bad}, str(tmp_path / "owt"))
    assert list((tmp_path / "owt").iterdir()) == []  # train.bin.tmp, written first, is gone too


def latin1(tmp):
    (tmp / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    return tmp / "latin1.txt"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# (case, arguments before --out_dir given the tmp folder and the corpus folder, extra environment, expected text)
BAD = [
    ("missing file", lambda t, c: [OWT, "--files", t / "nope.jsonl"], {}, "nope.jsonl' not found"),
    ("empty file", lambda t, c: [OWT, "--files", write(t / "empty.jsonl", "")], {}, "the corpus is empty"),
    ("only empty documents", lambda t, c: [OWT, "--files", write(t / "e.jsonl", '{"text": ""}\n' * 3)], {},
     "every document in"),
    ("wrong text column", lambda t, c: [OWT, "--files", c / "docs.jsonl", "--text_column", "body"], {},
     "has no column 'body'; its columns are id, text"),
    ("unknown dataset offline", lambda t, c: [OWT, "--dataset", "no_such_dataset_xyz"], {},
     "offline mode (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE) forbids downloading it; prepare local files instead: "
     "--files"),
    ("non-UTF-8 txt document", lambda t, c: [OWT, "--files", latin1(t), c / "txt" / "0000.txt", "--num_proc", "2"],
     {}, "latin1.txt is not UTF-8 text (bad byte at offset 3)"),
    ("non-UTF-8 text for prepare_text", lambda t, c: ["data/prepare_text.py", latin1(t)], {},
     "latin1.txt is not UTF-8 text (bad byte at offset 3); convert it"),
    ("a document with null text", lambda t, c: [OWT, "--files", write(t / "n.jsonl", '{"text": "a"}\n{"text": null}\n'),
                                                "--num_proc", "1"], {}, "has no text (its 'text' is null)"),
    ("negative split seed", lambda t, c: [OWT, "--files", c / "docs.jsonl", "--seed", "-1"], {},
     "--seed=-1 must be >= 0"),
    ("misspelt option", lambda t, c: ["data/prepare_text.py", latin1(t), "--tokeniser", "gpt2"], {},
     "unrecognized arguments: --tokeniser gpt2 (see --help)"),
    ("input.txt that is a folder", lambda t, c: ["data/shakespeare_char/prepare.py"], {}, "input.txt (Is a directory)"),

    ("Shakespeare with no network and no input.txt", lambda t, c: ["data/shakespeare/prepare.py"],
     {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"},
     "could not download https://raw.githubusercontent.com/"),
    ("Shakespeare with no network and no cached ranks", lambda t, c: ["data/shakespeare/prepare.py"],
     {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "TIKTOKEN_CACHE_DIR": "{tmp}/none"},
     "set TIKTOKEN_CACHE_DIR to a folder holding r50k_base.tiktoken"),
]


def snapshot(folder):
    return {p.name: p.read_bytes() if p.is_file() else "folder" for p in folder.iterdir()}


@pytest.mark.parametrize("case,args,env,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_line_and_outputs_untouched(case, args, env, expected, corpus, hf_env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.bin").write_bytes(b"old train")  # earlier outputs must survive a failed run
    (out / "val.bin").write_bytes(b"old val")
    if "cached ranks" in case:
        (out / "input.txt").write_text("To be, or not to be\n", encoding="utf-8")
    if "is a folder" in case:
        (out / "input.txt").mkdir()
    before = snapshot(out)
    env = {k: v.format(tmp=tmp_path) for k, v in {**hf_env, **env}.items()}
    r = run(*args(tmp_path, corpus[0]), "--out_dir", out, env=env, timeout=120)
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    assert line.startswith("error: ") and expected in line, r.stderr
    assert "Traceback" not in r.stderr
    assert snapshot(out) == before


def test_benchmark_runs_on_a_small_corpus(hf_env):
    r = run("data/bench_tokenize.py", "--mb", "0.3", "--num_proc", "1", env=hf_env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "MB/s" in r.stdout and "val: " in r.stdout
