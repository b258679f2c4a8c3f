"""The corpus: PTB folders and their errors, the generated corpus, batchify, and downloading PTB."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from enas_tui import data
from enas_tui.data import DataError, FileCheck, batchify, generated_corpus, load_corpus, load_ptb_dir

TRAIN, VALID, TEST = "the cat sat\nthe dog\n", "a cat ran\n", "the bird"
SPLIT_TEXT = {"train": TRAIN, "valid": VALID, "test": TEST}


def write_ptb(folder: Path, layout: str = "ptb.{}.txt", texts: dict[str, str] = SPLIT_TEXT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (folder / layout.format(split)).write_text(text, encoding="utf-8")
    return folder


def one_line_error(func, *args) -> str:
    with pytest.raises(DataError) as info:
        func(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- PTB folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["ptb.{}.txt", "{}.txt"])
def test_load_ptb_dir_reads_both_layouts(tmp_path: Path, layout: str) -> None:
    corpus = load_ptb_dir(write_ptb(tmp_path / "ptb", layout))
    # ids in order of first appearance, train first; every line (even one without "\n") ends in <eos>
    assert corpus.vocab == ["the", "cat", "sat", "<eos>", "dog", "a", "ran", "bird"]

    def decode(ids: np.ndarray) -> str:
        return " ".join(corpus.vocab[i] for i in ids)

    assert decode(corpus.train) == "the cat sat <eos> the dog <eos>"
    assert decode(corpus.valid) == "a cat ran <eos>"
    assert decode(corpus.test) == "the bird <eos>"
    assert corpus.train.dtype == np.int64 and corpus.vocab_size == 8
    assert str(tmp_path / "ptb") in corpus.source


def test_load_ptb_dir_keeps_blank_lines_and_crlf(tmp_path: Path) -> None:
    texts = {"train": "a b\r\n\r\nc\r\n", "valid": "a\n", "test": "b\n"}
    corpus = load_ptb_dir(write_ptb(tmp_path, texts=texts))
    assert [corpus.vocab[i] for i in corpus.train] == ["a", "b", "<eos>", "<eos>", "c", "<eos>"]


def test_load_corpus_picks_folder_or_generator(tmp_path: Path) -> None:
    assert load_corpus(str(write_ptb(tmp_path))).vocab_size == 8
    assert load_corpus(None, seed=3).source.startswith("generated corpus (seed 3")


def test_missing_folder(tmp_path: Path) -> None:
    message = one_line_error(load_ptb_dir, tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message


def test_not_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "ptb.train.txt"
    file.write_text("a b\n")
    message = one_line_error(load_ptb_dir, file)
    assert str(file) in message and "not a folder" in message


def test_empty_path_is_not_the_current_folder() -> None:
    assert "no data folder" in one_line_error(load_ptb_dir, "")


@pytest.mark.parametrize("layout,missing", [("ptb.{}.txt", "ptb.valid.txt"), ("{}.txt", "test.txt")])
def test_missing_file_names_it_and_both_layouts(tmp_path: Path, layout: str, missing: str) -> None:
    write_ptb(tmp_path, layout)
    (tmp_path / missing).unlink()
    message = one_line_error(load_ptb_dir, tmp_path)
    assert f"no {missing}" in message
    assert "ptb.train.txt" in message and "train.txt, valid.txt, test.txt" in message


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "is empty"),
        (b" \n\n  \n", "is empty"),
        (b"a b\0c\n", "NUL bytes"),
        (b"caf\xe9 ok\n", "not UTF-8"),
    ],
)
def test_bad_file_contents(tmp_path: Path, content: bytes, expected: str) -> None:
    write_ptb(tmp_path)
    (tmp_path / "ptb.test.txt").write_bytes(content)
    message = one_line_error(load_ptb_dir, tmp_path)
    assert "ptb.test.txt" in message and expected in message


def test_utf8_text_is_accepted(tmp_path: Path) -> None:
    texts = {"train": "café naïve\n", "valid": "é\n", "test": "x\n"}
    corpus = load_ptb_dir(write_ptb(tmp_path, texts=texts))
    assert corpus.vocab[:2] == ["café", "naïve"]


def test_real_ptb_text(real_ptb_dir: Path, shared_dir: Path) -> None:
    corpus = load_ptb_dir(real_ptb_dir)
    # token counts from shared/data/ptb/README.md: words plus one <eos> per line
    assert len(corpus.train) == 70_390 + 3_370
    assert len(corpus.valid) + len(corpus.test) == 78_669 + 3_761
    first_word = (shared_dir / "data" / "ptb" / "ptb.valid.txt").read_text().split()[0]
    assert corpus.vocab[0] == first_word
    assert {"<unk>", "N", "<eos>"} <= set(corpus.vocab)
    assert corpus.vocab_size <= 10_000  # a subset of the standard 10k vocabulary
    assert len(set(corpus.vocab)) == corpus.vocab_size
    assert max(corpus.train.max(), corpus.valid.max(), corpus.test.max()) == corpus.vocab_size - 1


# --- the generated corpus ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen() -> data.Corpus:
    return generated_corpus(0)


def test_generated_corpus_is_deterministic(gen: data.Corpus) -> None:
    again, other = generated_corpus(0), generated_corpus(1)
    assert again.vocab == gen.vocab
    for split in data.SPLITS:
        assert np.array_equal(getattr(again, split), getattr(gen, split))
    assert other.vocab != gen.vocab
    assert not np.array_equal(other.train[:1000], gen.train[:1000])


def test_generated_corpus_shape(gen: data.Corpus) -> None:
    assert 1_000 <= gen.vocab_size <= 2_000
    assert len(set(gen.vocab)) == gen.vocab_size and "<eos>" in gen.vocab
    assert all(word.isalpha() and word.islower() for word in gen.vocab if word != "<eos>")
    eos = gen.vocab.index("<eos>")
    for split, size in data.GENERATED_SIZES.items():
        ids = getattr(gen, split)
        assert ids.dtype == np.int64 and size <= len(ids) < size * 1.01
        assert ids[-1] == eos  # whole sentences
        assert 0 <= ids.min() and ids.max() < gen.vocab_size
    sentence_length = len(gen.train) / np.count_nonzero(gen.train == eos)
    assert 5 < sentence_length < 60


def unigram_and_bigram_ppl(corpus: data.Corpus) -> tuple[float, float]:
    """Perplexities on valid of add-0.1 unigram counts and a bigram model interpolated with them."""
    v, train, valid = corpus.vocab_size, corpus.train, corpus.valid
    unigram = np.bincount(train, minlength=v) + 0.1
    unigram /= unigram.sum()
    pairs = np.zeros((v, v))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    context = np.maximum(pairs.sum(axis=1), 1.0)
    prev, nxt = valid[:-1], valid[1:]
    bigram = 0.8 * pairs[prev, nxt] / context[prev] + 0.2 * unigram[nxt]
    return float(np.exp(-np.log(unigram[nxt]).mean())), float(np.exp(-np.log(bigram).mean()))


def test_generated_corpus_has_learnable_structure(gen: data.Corpus) -> None:
    unigram_ppl, bigram_ppl = unigram_and_bigram_ppl(gen)
    assert 100 < unigram_ppl < 1_000
    assert bigram_ppl < unigram_ppl / 3
    floor = data.generated_corpus_entropy_ppl(0)
    assert gen.floor_ppl == pytest.approx(floor) and f"{floor:.1f}" in gen.source
    assert 10 < floor < bigram_ppl  # no model beats the grammar itself


def test_generated_floor_matches_oracle_likelihood() -> None:
    """The analytic entropy rate agrees with the true grammar's average log-loss on its own sample."""
    rng = np.random.Generator(np.random.PCG64(5))
    grammar = data._make_grammar(rng)
    states = data._sample_states(grammar.trans, 200_000, rng)
    tokens = data._emit_words(grammar, states, rng)
    word_prob = np.ones(len(grammar.vocab))  # P(word | its class); <eos> is certain in its state
    for s in range(1, len(grammar.emit)):
        word_prob[grammar.word_ids[s]] = grammar.emit[s]
    prev = np.concatenate([[0], states[:-1]])
    log_loss = -np.log(grammar.trans[prev, states] * word_prob[tokens]).mean()
    assert np.exp(log_loss) == pytest.approx(np.exp(grammar.entropy_rate()), rel=0.03)


# --- batchify ----------------------------------------------------------------------------------


def test_batchify_makes_parallel_streams() -> None:
    ids = np.arange(23, dtype=np.int64)
    batch = batchify(ids, 4)
    assert batch.shape == (5, 4) and batch.dtype == torch.int64 and batch.is_contiguous()
    for b in range(4):  # column b is the b-th contiguous stretch; the 3 left over are dropped
        assert batch[:, b].tolist() == list(range(5 * b, 5 * b + 5))


def test_batchify_rejects_too_little_data() -> None:
    assert "too few" in one_line_error(batchify, np.arange(7), 4)
    assert "batch size" in one_line_error(batchify, np.arange(7), 0)


# --- downloading PTB ---------------------------------------------------------------------------


class _Server:
    """A real HTTP server on 127.0.0.1 serving ``folder`` at ``url``, recording the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "data"
        self.folder.mkdir(parents=True)
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path / "www")
    yield srv
    srv.close()


def fake_ptb(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Small stand-in files served from folder, with PTB_FILES patched to their sizes and sha256."""
    files = {name: f" {name} line one\n line two\n".encode() for name in data.PTB_FILES}
    for name, content in files.items():
        (folder / name).write_bytes(content)
        check = FileCheck(size=len(content), sha256=hashlib.sha256(content).hexdigest())
        monkeypatch.setitem(data.PTB_FILES, name, check)
    return files


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_download_real_files_and_skip_when_present(
    server: _Server, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ptb.valid.txt", "ptb.test.txt"):
        shutil.copyfile(shared_dir / "data" / "ptb" / name, server.folder / name)
    # git's blob id of "hello\n" is a well-known value; it checks the train file's git-blob path
    (server.folder / "ptb.train.txt").write_bytes(b"hello\n")
    check = FileCheck(size=6, git_blob="ce013625030ba8dba906f756967f9e9ca394464a")
    monkeypatch.setitem(data.PTB_FILES, "ptb.train.txt", check)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "ptb.test.txt").write_text("stale partial copy")  # wrong content is replaced
    seen: list[tuple[str, int, int]] = []

    paths = data.download_ptb(dest, base_url=server.url, progress=lambda *a: seen.append(a))

    assert paths == [dest / "ptb.train.txt", dest / "ptb.valid.txt", dest / "ptb.test.txt"]
    for path in paths:
        assert path.read_bytes() == (server.folder / path.name).read_bytes()
    assert no_partial_files(dest)
    assert {name for name, _, _ in seen} == set(data.PTB_FILES)
    assert ("ptb.valid.txt", 399_782, 399_782) in seen
    assert len(server.requests) == 3

    assert data.download_ptb(dest, base_url=server.url) == paths
    assert len(server.requests) == 3  # everything verified, nothing fetched again


def test_download_checksum_mismatch(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = fake_ptb(server.folder, monkeypatch)
    corrupt = bytearray(files["ptb.valid.txt"])
    corrupt[3] ^= 1  # same size, different bytes
    (server.folder / "ptb.valid.txt").write_bytes(bytes(corrupt))
    message = one_line_error(data.download_ptb, tmp_path / "dest", server.url)
    assert "ptb.valid.txt" in message and "sha256" in message
    assert (tmp_path / "dest" / "ptb.train.txt").is_file()
    assert not (tmp_path / "dest" / "ptb.valid.txt").exists()
    assert no_partial_files(tmp_path / "dest")


def test_download_size_mismatch(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ptb(server.folder, monkeypatch)
    (server.folder / "ptb.train.txt").write_bytes(b"short\n")
    message = one_line_error(data.download_ptb, tmp_path, server.url)
    assert "ptb.train.txt" in message and "size 6 bytes" in message


def test_download_404(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ptb(server.folder, monkeypatch)
    (server.folder / "ptb.test.txt").unlink()
    message = one_line_error(data.download_ptb, tmp_path / "dest", server.url)
    assert "ptb.test.txt" in message and "HTTP 404" in message
    assert not (tmp_path / "dest" / "ptb.test.txt").exists()
    assert no_partial_files(tmp_path / "dest")


def test_download_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = one_line_error(data.download_ptb, tmp_path, f"http://127.0.0.1:{port}", 5.0)
    assert "ptb.train.txt" in message and "failed" in message
    assert no_partial_files(tmp_path)


def test_download_into_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert "not a folder" in one_line_error(data.download_ptb, target)


def test_cli_download_verifies_and_reports(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    from enas_tui.cli import main

    fake_ptb(server.folder, monkeypatch)
    with pytest.raises(SystemExit) as done:
        main(["data", "download", "ptb", "--dir", str(tmp_path / "ptb"), "--url", server.url])
    assert done.value.code == 0
    assert "3 files verified" in capsys.readouterr().out
    assert data.load_ptb_dir(tmp_path / "ptb").vocab_size > 0
    (server.folder / "ptb.test.txt").unlink()
    with pytest.raises(SystemExit) as failed:
        main(["data", "download", "ptb", "--dir", str(tmp_path / "other"), "--url", server.url])
    err = capsys.readouterr().err
    assert failed.value.code == 1 and err.startswith("enas-tui: error:") and "ptb.test.txt" in err
    assert err.count("\n") == 1
